#!/usr/bin/env bash
# The GPU measurements of issues 3-7 in one command, for a CUDA machine whose python3 has
# jax[cuda], torch and triton but no registry access (grain, tfds, FLA and the small pure-Python
# dependencies come as wheels in .whl/, see scripts/fetch_gpu_wheels.sh).
#
#   SMALL_E_COMMIT=<hash> OUT=<dir> bash scripts/gpu_measure.sh STEP [STEP ...]
#
# Steps (each appends JSON lines to $OUT/results.jsonl and logs to $OUT/<step>.log):
#   fla_tune    FLA's autotuning at the Small-E shape, in the foreground (quiet GPU: fair configs);
#               packs the tuned configs into $OUT/triton_autotune.tgz (carry it as .device/ next run)
#   data_bg / data_wait   the data step in the background on the CPU, and waiting for it
#   fla_warm    start FLA's Triton autotuning in the background (low priority), so that a later
#               `kernel` step finds tuned configs in $TRITON_CACHE_DIR; `fla_cache` packs them
#   kernel      GLA kernels: our JAX backends and FLA chunk_gla in the same run (gla_bench)
#   train       train-step throughput: GLA and transformer presets at the paper's shapes
#   crossover   train-step throughput at a fixed 24K frames per batch, T = 1K..16K, both presets
#               (crossover:PRESET for one preset; $CROSSOVER_STEPS timed steps, default 5;
#               $CROSSOVER_TIMEOUT seconds per preset, default 300: each length compiles for
#               40-85 s on an H200, so three lengths fit, four do not)
#   codec       Flax DAC vs PyTorch DAC encode/decode throughput
#   pallas_tests  compiled parity of the Pallas GLA kernels (pytest -m gpu tests/kernels)
#   block_tests   compiled parity of the fused decode block only (tests/kernels/test_block_step.py)
#   decode_variants  batch-1 decode per fused-kernel option set ($DECODE_VARIANTS) and XLA, one run
#   profile     device time per kernel and per model scope of the GLA train step (8 x 4096)
#   kernel_profile  device time per kernel of one GLA layer, fwd and fwd+bwd (gla_profile;
#               $KERNEL_BACKENDS, default pallas_gpu; $KERNEL_PROFILE_SHAPE, default Small-E)
#   decode      decode speed of the small_e_librilight_medium preset (batch 1..64, streaming)
#   decode_graphs  the same with XLA command buffers (CUDA graphs) over the whole decode loop
#   paca_runs   issue 10: the mini corpus tokenized by the shipped dac_mini24, then per arm
#               ($PACA_ARMS, default "paca plain") $PACA_STEPS steps of $PACA_PRESET, perplexity,
#               teacher-forced attention skips/repeats, and the validation sentences synthesized;
#               $OUT/paca_runs.tgz.* hold the wavs, maps and TensorBoard logs (WER runs on the
#               CPU: benchmarks/gpu_runbook.md); the same for 72 training sentences (`*_train*`), to tell
#               memorisation from generalisation
#   reading_corpus  the synthetic reading corpus made here (engines from .device/tts_engines.tar.xz,
#               scripts/bundle_tts_engines.sh), tokenized by the shipped dac_mini24 through the
#               synthetic_corpus builder, packed for the trip back ($OUT/reading_tokens.npz.*:
#               `cat` the parts, then `python -m data_pipeline.transport unpack`), the corpus
#               manifest, README and failures; $READING_HOURS (default 32); $READING_LIMIT: only the
#               first N utterances of each split; READING_PACK=0: no packing
#   reading_probe   train the small_e_reading preset on that corpus until $PROBE_SECONDS (default
#               120) have passed: compile time, steps/s and the first losses, for planning
#   reading_train   one arm ($READING_ARM: paca or plain) of experiments.small_e_reading on the
#               packed corpus carried in .device/reading_tokens.npz.*, $READING_STEPS steps or until
#               $TRAIN_DEADLINE (epoch seconds; SIGTERM saves), then perplexity and teacher-forced
#               attention on the validation split and the codes of the held-out sentences and of
#               voice cloning ($OUT/<arm>_codes.npz, decoded and scored on a CPU); paca also exports (READING_EXPORT=0: not; =1: plain too)
#               the shippable model ($OUT/small_e_reading.tar.*)
#   codec_train train the small codec of issue 11 for $CODEC_MINUTES minutes (resumes from .device/)
#   data        build the mini corpus (random DAC on the GPU) and time the grain loader
#   fla_cache   wait for fla_warm (until $FLA_DEADLINE seconds into the run) and pack the
#               autotuning results ($OUT/triton_autotune.tgz) to carry into the next run
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT="${OUT:-/tmp/gpu_out}"
mkdir -p "$OUT"
START=$(date +%s)
if [ -z "${SMALL_E_WHEELS_INSTALLED:-}" ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}" SMALL_E_WHEELS_INSTALLED=1
  # Fail in seconds, not minutes into a step, when a carried wheel set lacks a dependency (a
  # build once died on etils' lazy import of importlib_resources after the corpus was made).
  python3 -c "import grain, array_record, soundfile, soxr, tensorflow_datasets, importlib_resources
from etils import epath" || { echo "error: the wheels in .whl/ miss a dependency (scripts/fetch_gpu_wheels.sh)"; exit 1; }
fi
export PYTHONUNBUFFERED=1 TRITON_CACHE_DIR="${TRITON_CACHE_DIR:-/tmp/triton_cache}"
# Compile once per program and autotune each GEMM shape once across the steps' processes (the
# crossover's shapes share B*T, so their projections share GEMM shapes).
export JAX_COMPILATION_CACHE_DIR=/tmp/jax_cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=1
export XLA_FLAGS="--xla_gpu_per_fusion_autotune_cache_dir=/tmp/xla_autotune ${XLA_FLAGS:-}"
# FLA's autotuning results: brought back from an earlier run (.device/, carried), else the
# committed ones (tuned on a quiet H200 with FLA 0.6.0 and Triton 3.6.0; Triton keys them by
# kernel source, Triton version and GPU arch, so other versions simply tune afresh).
AUTOTUNE_TGZ=.device/triton_autotune.tgz
[ -f "$AUTOTUNE_TGZ" ] || AUTOTUNE_TGZ=benchmarks/fla_autotune/h200_fla0.6.0_triton3.6.0.tgz
if [ -f "$AUTOTUNE_TGZ" ]; then
  mkdir -p "$TRITON_CACHE_DIR" && tar -xzf "$AUTOTUNE_TGZ" -C "$TRITON_CACHE_DIR"
fi
R="$OUT/results.jsonl"
PEAK="${PEAK_TFLOPS:-790}"  # dense bf16 matmul rate measured on an H200 (KINDS.md)
elapsed() { echo $(( $(date +%s) - START )); }
# Whatever FLA's autotuning has finished so far (Triton stores each kernel's result as it is
# tuned) -> $OUT/triton_autotune.tgz, to carry as .device/ into the next run, which resumes there.
pack_autotune() {
  (cd "$TRITON_CACHE_DIR" && find . -name '*.autotune.json' | tar -czf "$OUT/triton_autotune.tgz" -T -)
  echo "autotune files: $(tar -tzf "$OUT/triton_autotune.tgz" | wc -l)"
}
# The decode benchmark (bench_decode records XLA_FLAGS, so variants stay apart in results.jsonl).
run_decode() {
  # shellcheck disable=SC2086  # DECODE_ARGS is a list of flags
  timeout "${DECODE_TIMEOUT:-300}" python3 -m benchmarks.bench_decode --batch "${DECODE_BATCHES:-1,8,32,64}" \
    ${DECODE_ARGS:-} --out "$R" 2>&1 | tee -a "$OUT/decode.log"
}

for step in "$@"; do
  echo "=== $step (t=$(elapsed)s)"
  case "$step" in
    fla_tune)  # FLA's autotuning at the Small-E shape in the foreground, on a quiet GPU
      timeout "${FLA_TIMEOUT:-420}" python3 -m benchmarks.kernels.fla_baseline --B 8 --T 4096 --H 4 --Dk 128 --Dv 256 \
        --repeats 1 2>&1 | grep -v Warning | tail -3 | tee "$OUT/fla_tune.log"
      pack_autotune ;;
    data_bg)  # the data step in the background on the CPU (leaves the GPU quiet)
      JAX_PLATFORMS=cpu DATA_MAX_EXAMPLES="${DATA_MAX_EXAMPLES:-200}" bash "$0" data >"$OUT/data_bg.log" 2>&1 &
      echo $! >/tmp/data_bg.pid ;;
    data_wait)
      while kill -0 "$(cat /tmp/data_bg.pid)" 2>/dev/null; do sleep 2; done; cat "$OUT/data.log" ;;
    fla_warm)
      # shellcheck disable=SC2016  # the inner script expands its own positional parameters
      nice -n 19 bash -c 'for s in "8 4096 4 128 256" "8 1024 8 64 64" "4 4096 64 128 128"; do
          set -- $s; python3 -m benchmarks.kernels.fla_baseline --B $1 --T $2 --H $3 --Dk $4 --Dv $5 --repeats 1
        done' >"$OUT/fla_warm.log" 2>&1 &
      echo $! >/tmp/fla_warm.pid ;;
    kernel)
      python3 -m benchmarks.kernels.gla_bench --shapes "${KERNEL_SHAPES:-small_e,fla}" \
        ${KERNEL_BACKENDS:+--backends $KERNEL_BACKENDS} \
        --fla-timeout "${FLA_TIMEOUT:-240}" --out "$R" 2>&1 | tee "$OUT/kernel.log" ;;
    train)
      for preset in ${TRAIN_PRESETS:-small_e_librilight_medium transformer_baseline}; do
        for remat in ${REMATS:-false true}; do
          timeout 300 python3 -m benchmarks.throughput --config "$preset" --shapes "${TRAIN_SHAPES:-16x1500,8x4096}" \
            --steps 10 --peak-tflops "$PEAK" --label "$preset/remat=$remat" --out "$R" "model.remat=$remat" \
            "model.gla_backend=${GLA_BACKEND:-auto}"
        done
      done 2>&1 | tee "$OUT/train.log" ;;
    crossover|crossover:*)  # crossover:PRESET times that preset only
      presets="small_e_librilight_medium transformer_baseline"
      [ "$step" != crossover ] && presets="${step#crossover:}"
      for preset in $presets; do
        timeout "${CROSSOVER_TIMEOUT:-300}" python3 -m benchmarks.throughput --config "$preset" --frames-per-batch 24576 \
          --lengths "${CROSSOVER_LENGTHS:-1024,2048,4096,8192,16384}" --steps "${CROSSOVER_STEPS:-5}" --peak-tflops "$PEAK" \
          --label "$preset/crossover" --out "$R" model.remat=false "model.gla_backend=${GLA_BACKEND:-auto}"
      done 2>&1 | tee -a "$OUT/crossover.log" ;;
    pallas_tests)
      timeout 420 python3 -m pytest -m gpu tests/kernels -q -x -p no:cacheprovider 2>&1 | tee "$OUT/pallas_tests.log" ;;
    block_tests)  # only the fused decode block's compiled parity (kernels/gla/block_step.py)
      timeout 300 python3 -m pytest -m gpu tests/kernels/test_block_step.py -q -x -p no:cacheprovider 2>&1 \
        | tee "$OUT/block_tests.log" ;;
    profile)
      timeout 240 python3 -m benchmarks.profile_step --config small_e_librilight_medium --shape "${PROFILE_SHAPE:-8x4096}" \
        --steps 3 --top 30 --out "$OUT/profile_gla.json" model.remat=false \
        "model.gla_backend=${GLA_BACKEND:-auto}" 2>&1 | tee "$OUT/profile.log" ;;
    kernel_profile)
      timeout 240 python3 -m benchmarks.kernels.gla_profile --backends "${KERNEL_BACKENDS:-pallas_gpu}" \
        --shape "${KERNEL_PROFILE_SHAPE:-8,4096,4,128,256}" --out "$OUT/gla_profile.json" 2>&1 \
        | tee "$OUT/kernel_profile.log" ;;
    decode)  # $DECODE_ARGS: extra bench_decode flags, e.g. "--unroll 8"
      run_decode ;;
    decode_variants)  # batch-1 decode through the fused block kernels, once per A/B option set
      # ($DECODE_VARIANTS: space-separated option sets of kernels/gla/block_step.py OPTIONS;
      # "default" = none), then XLA, all in this one run on one machine.
      for variant in ${DECODE_VARIANTS:-default whole_recurrence two_load_mlp_in warps2 warps8}; do
        opts="$variant"; [ "$variant" = default ] && opts=""
        timeout 120 python3 -m benchmarks.bench_decode --batch 1 --first-chunk 0 --trace \
          model.decode_kernels=pallas "model.decode_kernel_options=$opts" --out "$R" 2>&1 \
          | grep -v Warning | tee -a "$OUT/decode_variants.log"
      done
      timeout 120 python3 -m benchmarks.bench_decode --batch 1 --first-chunk 0 model.decode_kernels=xla \
        --out "$R" 2>&1 | tee -a "$OUT/decode_variants.log" ;;
    decode_graphs)  # the same with the whole decode loop eligible for CUDA graphs (XLA command
      # buffers with WHILE/CONDITIONAL): at batch 1 a step is ~100 tiny kernels, launch-bound
      XLA_FLAGS="$XLA_FLAGS --xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN,WHILE,CONDITIONAL --xla_gpu_graph_min_graph_size=1" \
        run_decode ;;
    codec_train)
      mkdir -p .device/codec_run
      timeout $(( ${CODEC_MINUTES:-4} * 60 + 120 )) python3 -m small_e_jax.codec.train --workdir .device/codec_run \
        --max-minutes "${CODEC_MINUTES:-4}" 2>&1 | tee "$OUT/codec_train.log"
      # Files come back at most 16 MiB each: the run (checkpoint ~36 MB) in 15 MB pieces; rebuild
      # with `cat codec_run.tgz.* | tar -xzf - -C .device` and carry .device into the next run.
      tar -czf - -C .device codec_run/checkpoints codec_run/export | split -b 15m - "$OUT/codec_run.tgz." ;;
    codec)
      XLA_PYTHON_CLIENT_MEM_FRACTION=0.45 timeout 300 python3 -m benchmarks.codec_bench --batches 1,16,64 --precision default,highest \
        --out "$R" 2>&1 | tee "$OUT/codec.log" ;;
    data)
      { timeout 300 python3 -m data_pipeline.build --dataset mini --data_dir /tmp/tfds \
          ${DATA_MAX_EXAMPLES:+--max_examples $DATA_MAX_EXAMPLES} \
        && for w in 0 8; do timeout 120 python3 -m benchmarks.bench_loader --dataset mini \
             --data_dir /tmp/tfds --workers $w --batches 300; done; } 2>&1 | tee "$OUT/data.log" ;;
    fla_cache)
      deadline="${FLA_DEADLINE:-540}"
      while [ -f /tmp/fla_warm.pid ] && kill -0 "$(cat /tmp/fla_warm.pid)" 2>/dev/null \
            && [ "$(elapsed)" -lt "$deadline" ]; do sleep 5; done
      pack_autotune; tail -5 "$OUT/fla_warm.log" ;;
    paca_runs)
      # $PACA_DATA_DIR: a corpus already tokenized (e.g. carried in .device/); the build reuses it.
      data_dir="${PACA_DATA_DIR:-/tmp/tfds_mini24}"
      { timeout 300 python3 -m data_pipeline.build --dataset mini --data_dir "$data_dir" \
          --codec dac_mini24 --codec_weights bundled || exit 1
        # The 72 held-out sentences, and as many training sentences (memorisation check).
        for split in validation train; do
          python3 -c 'import json, sys; rows = [json.loads(l) for l in open(sys.argv[1])]
texts = [r["text"] for r in rows if r["split"] == sys.argv[2]][:72]
print("".join(t + "\n" for t in texts), end="")' \
            data_pipeline/mini_corpus/manifest.jsonl $split > /tmp/${split}_texts.txt
        done
        for arm in ${PACA_ARMS:-paca plain}; do
          entry=experiments.librilight_medium; [ "$arm" = plain ] && entry=experiments.paca_ablation
          run=/tmp/runs/$arm
          timeout "${PACA_TIMEOUT:-300}" python3 -m $entry --config "${PACA_PRESET:-small_e_librilight_medium}" \
            --data=mini data.codec=dac_mini24 data.codec_weights=bundled "data.data_dir=$data_dir" \
            "trainer.workdir=$run" "trainer.steps=${PACA_STEPS:-2000}" trainer.eval_every=500 \
            checkpoint.save_every_steps=1000
          for split in validation train; do  # file names: validation as before, train with _train
            sfx=""; [ $split = train ] && sfx=_train
            python3 -m small_e_jax.evaluate perplexity --checkpoint "$run/checkpoints" --data mini \
              --data-dir "$data_dir" --split $split --max-batches 3 --label "$arm$sfx" --out "$OUT/${arm}${sfx}_ppl.json"
            python3 -m small_e_jax.evaluate attention --checkpoint "$run/checkpoints" --data mini \
              --data-dir "$data_dir" --split $split --max-batches 3 --label "$arm$sfx" \
              --out-dir "/tmp/eval/${arm}${sfx}_attention" --out "$OUT/${arm}${sfx}_attention.json"
            python3 -m small_e_jax.synthesize --checkpoint "$run/checkpoints" --texts-file /tmp/${split}_texts.txt \
              --out "/tmp/eval/${arm}${sfx}_wavs" --seed 0 --max-frames 600
          done
        done
        # Files come back at most 16 MiB each: rebuild with `cat paca_runs.tgz.* | tar -xzf -`.
        # shellcheck disable=SC2046  # one word per TensorBoard folder
        tar -czf - -C /tmp eval $(cd /tmp && ls -d runs/*/tensorboard 2>/dev/null) \
          | split -b 15m - "$OUT/paca_runs.tgz."
      } 2>&1 | tee "$OUT/paca_runs.log" ;;
    reading_corpus)
      { mkdir -p /tmp/tts && tar -xJf .device/tts_engines.tar.xz -C /tmp/tts || exit 1
        t0=$(date +%s)
        limit=(); [ -n "${READING_LIMIT:-}" ] && limit=(--limit "$READING_LIMIT")
        # $SYNTH_DEADLINE (epoch seconds): stop synthesizing then, with the held-out splits complete
        # and a random part of the training split (make_synthetic_corpus --max-minutes).
        budget=(); [ -n "${SYNTH_DEADLINE:-}" ] && budget=(--max-minutes "$(awk "BEGIN{print ($SYNTH_DEADLINE - $t0) / 60}")")
        python3 -m data_pipeline.make_synthetic_corpus --out /tmp/reading_corpus --hours "${READING_HOURS:-32}" \
          --format wav --sample-rate 24000 --engines-prefix /tmp/tts --no-progress-bar "${limit[@]}" "${budget[@]}" \
          || exit 1
        t1=$(date +%s)
        # $BUILD_DEADLINE (epoch seconds): stop the build then; its encode cache (chunks of 64
        # utterances) resumes it, and the chunks done give its rate either way.
        build_s=$(( ${BUILD_DEADLINE:-$(( t1 + 100000 ))} - t1 ))
        timeout -s TERM "$build_s" python3 -m data_pipeline.build --dataset synthetic_corpus \
          --manual-dir /tmp/reading_corpus --codec dac_mini24 --codec-weights bundled --data-dir /tmp/tfds_reading 2>&1 \
          | grep -v -E "Warning|it/s]|s/it]"
        rc=${PIPESTATUS[0]}
        t2=$(date +%s)
        chunks=$(find /tmp/tfds_reading/_encode_cache -name 'chunk_*.pkl' 2>/dev/null | wc -l)
        echo "reading_corpus: build rc $rc after $((t2 - t1)) s; $chunks chunks of up to 64 utterances encoded" \
          "($(( chunks * 64 / (t2 - t1 + 1) )) utterances/s at most)"
        [ "$rc" = 0 ] || exit 1
        if [ "${READING_PACK:-1}" != 0 ]; then
          python3 -m data_pipeline.transport pack --dataset synthetic_corpus --codec dac_mini24 \
            --data_dir /tmp/tfds_reading --out /tmp/reading_tokens.npz || exit 1
          split -b 16000000 /tmp/reading_tokens.npz "$OUT/reading_tokens.npz."
        fi
        gzip -c /tmp/reading_corpus/manifest.jsonl > "$OUT/reading_manifest.jsonl.gz"
        cp /tmp/reading_corpus/README.md "$OUT/reading_corpus_README.md"
        gzip -c /tmp/reading_corpus/failures.jsonl > "$OUT/reading_failures.jsonl.gz"
        cat /tmp/tfds_reading/reports/*.summary.json
        echo "reading_corpus: synthesis $((t1 - t0)) s, build $((t2 - t1)) s, pack $(( $(date +%s) - t2 )) s"
      } 2>&1 | tee "$OUT/reading_corpus.log" ;;
    reading_probe)  # $PROBE_DEADLINE (epoch seconds) instead of $PROBE_SECONDS: stop then
      probe_s=${PROBE_SECONDS:-120}
      [ -n "${PROBE_DEADLINE:-}" ] && probe_s=$(( PROBE_DEADLINE - $(date +%s) ))
      echo "probe: ${probe_s} s"
      timeout -s TERM "$probe_s" python3 -m experiments.librilight_medium --config small_e_reading \
        --data=synthetic_corpus data.data_dir=/tmp/tfds_reading trainer.workdir=/tmp/runs/probe \
        trainer.progress_bar=false trainer.log_every=50 2>&1 | grep -v -E "Warning" | tail -60 | tee "$OUT/reading_probe.log" ;;
    reading_train)
      arm=${READING_ARM:-paca}; run=/tmp/runs/$arm; flag=""; [ "$arm" = plain ] && flag=--plain
      { if [ ! -d /tmp/tfds_reading ]; then
          cat .device/reading_tokens.npz.* > /tmp/reading_tokens.npz \
            && python3 -m data_pipeline.transport unpack /tmp/reading_tokens.npz --data_dir /tmp/tfds_reading || exit 1
        fi
        train_s=$(( ${TRAIN_DEADLINE:-$(( $(date +%s) + 300 ))} - $(date +%s) ))
        echo "training for at most ${train_s} s"
        # shellcheck disable=SC2086  # $flag is empty or one word
        timeout -s TERM "$train_s" python3 -m experiments.small_e_reading $flag data.data_dir=/tmp/tfds_reading \
          "trainer.workdir=$run" "trainer.steps=${READING_STEPS:-6000}" trainer.progress_bar=false \
          ${READING_OVERRIDES:-} 2>&1 | grep -v -E "Warning|WARNING"
        [ "${READING_PPL:-1}" != 0 ] && python3 -m small_e_jax.evaluate perplexity --checkpoint "$run/checkpoints" \
          --data-dir /tmp/tfds_reading --max-batches 4 --label "$arm" --out "$OUT/${arm}_ppl.json" 2>&1 \
          | grep -v -E "Warning|WARNING" | tail -3
        # READING_ATTN=0 / READING_GEN=0: leave the attention maps / the held-out codes to a CPU
        # (the exported model and the packed corpus are enough there), to give training the time.
        if [ "${READING_ATTN:-1}" != 0 ]; then
          python3 -m small_e_jax.evaluate attention --checkpoint "$run/checkpoints" --data-dir /tmp/tfds_reading \
            --max-batches 4 --label "$arm" --out-dir "/tmp/eval/${arm}_attention" --out "$OUT/${arm}_attention.json" \
            2>&1 | grep -v -E "Warning|WARNING" | tail -3
          cp "/tmp/eval/${arm}_attention/attention_maps.npz" "$OUT/${arm}_attention_maps.npz"
        fi
        if [ "${READING_GEN:-1}" != 0 ]; then
          python3 -m experiments.small_e_reading generate --checkpoint "$run/checkpoints" --data_dir /tmp/tfds_reading \
            --out "$OUT/${arm}_codes.npz" 2>&1 | grep -v -E "Warning|WARNING" | tail -3
        fi
        export_default=0; [ "$arm" = paca ] && export_default=1  # READING_EXPORT=0/1 overrides
        if [ "${READING_EXPORT:-$export_default}" = 1 ]; then
          name=small_e_reading; [ "$arm" = paca ] || name=small_e_reading_$arm
          python3 -m small_e_jax.pretrained export --checkpoint "$run/checkpoints" --out "/tmp/export/$name" \
            2>&1 | tail -1
          tar -cf - -C /tmp/export "$name" | split -b 16000000 - "$OUT/$name.tar."
        fi
      } 2>&1 | tee "$OUT/reading_train_${arm}.log" ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
echo "=== done (t=$(elapsed)s)"
