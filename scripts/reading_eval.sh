#!/usr/bin/env bash
# The reading model's measures on a CPU, from a trained model (a checkpoint folder or an exported
# one) and the tokenized corpus: the held-out sentences and the cloning prompts generated as codes,
# decoded by the shipped codec, then Whisper WER/CER with skips and repeats, speaker similarity,
# teacher-forced attention (skips/repeats/stalls, maps) and perplexity. One JSON per measure in OUT.
#
#   bash scripts/reading_eval.sh LABEL MODEL TFDS_DIR CORPUS OUT
#
# CORPUS: the corpus folder whose held-out splits hold the real clips (make them on any machine
# with `python -m data_pipeline.make_synthetic_corpus --out CORPUS --splits validation,heldout_voices
# --format wav --sample-rate 24000`: the same sentences and voices as the full corpus).
# The ground truth and the codec's resynthesis of it do not depend on the model: score them once
# with `python -m small_e_jax.codec.quality` (docs/synthetic_corpus.md).
set -euo pipefail
[ $# = 5 ] || { echo "usage: bash scripts/reading_eval.sh LABEL MODEL TFDS_DIR CORPUS OUT" >&2; exit 2; }
label=$1 model=$2 tfds=$3 corpus=$4 out=$5
mkdir -p "$out"
quiet() { grep -v -E "Warning|WARNING|warnings.warn" || true; }
t0=$(date +%s)
[ -f "$out/codes.npz" ] || python -m experiments.small_e_reading generate --checkpoint "$model" --data_dir "$tfds" \
  --out "$out/codes.npz" 2>&1 | quiet
[ -f "$out/tts.jsonl" ] || python -m experiments.small_e_reading decode --codes "$out/codes.npz" --corpus "$corpus" \
  --out "$out" 2>&1 | quiet
echo "generated and decoded in $(( $(date +%s) - t0 )) s"
for m in tts tts_long clone_tts; do
  [ -f "$out/wer_$m.json" ] || python -m small_e_jax.evaluate wer --manifest "$out/$m.jsonl" --label "${label}_$m" \
    --out "$out/wer_$m.json" 2>&1 | quiet | tail -2
done
for m in clone_pairs same_voice_pairs other_voice_pairs; do
  [ -f "$out/sim_$m.json" ] || python -m small_e_jax.evaluate similarity --pairs "$out/$m.jsonl" --label "${label}_$m" \
    --out "$out/sim_$m.json" 2>&1 | quiet | tail -2
done
[ -f "$out/attention.json" ] || python -m small_e_jax.evaluate attention --checkpoint "$model" --data-dir "$tfds" \
  --max-batches 4 --label "$label" --out-dir "$out/attention" --out "$out/attention.json" 2>&1 | quiet | tail -3
[ -f "$out/perplexity.json" ] || python -m small_e_jax.evaluate perplexity --checkpoint "$model" --data-dir "$tfds" \
  --max-batches 4 --label "$label" --out "$out/perplexity.json" 2>&1 | quiet | tail -3
echo "reading_eval $label: done in $(( $(date +%s) - t0 )) s -> $out"
