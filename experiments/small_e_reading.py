"""A Small-E that reads: the ``small_e_reading`` preset on the synthetic reading corpus.

    python -m data_pipeline.make_synthetic_corpus --out corpus/                       # ~32 h, 17 voices
    python -m data_pipeline.build --dataset synthetic_corpus --manual-dir corpus/ \\
        --codec dac_mini24 --codec-weights bundled --data-dir tfds/
    python -m experiments.small_e_reading data.data_dir=tfds/ [key=value ...]         # PACA (the model)
    python -m experiments.small_e_reading --plain data.data_dir=tfds/ ...             # plain cross-attention
    python -m experiments.small_e_reading generate --checkpoint RUN/checkpoints --data-dir tfds/ --out codes.npz

Training is ``experiments.librilight_medium``'s trainer with the ``small_e_reading`` preset
(20.5M parameters: GLA blocks, PACA) and ``--data=synthetic_corpus`` by default;
``--plain`` swaps PACA for 4-head plain cross-attention (the paper's ablation) in another workdir.
Same exit codes as the trainer.

``generate`` writes, without a codec (the codes are decoded elsewhere, e.g. on a CPU), the codes
of the held-out sentences (the ``validation`` split; without a prompt the model picks the voice)
and of voice cloning: for each held-out voice, its clip closest to 3 s (codes and transcript) as
the prompt, continued by the first ``--clone-texts`` held-out sentences. ``--split`` and
``--limit`` pick other rows.
"""

from __future__ import annotations

import json
import sys
import time
import zipfile
from typing import Optional, Sequence

import numpy as np

from small_e_jax.cli import ArgumentParser, entry_point
from small_e_jax.cli.train import main as train_main

PLAIN = ("name=small_e_reading_plain", "model.cross_attention=plain", "model.cross_attention_heads=4",
         "trainer.workdir=runs/small_e_reading_plain")


def _records(data_dir: str, split: str, codec: str = "dac_mini24", n_q: int = 4) -> list[dict]:
    from data_pipeline.loader import open_source

    source, _ = open_source("synthetic_corpus", split, data_dir=data_dir, codec=codec, n_q=n_q)
    return [source[i] for i in range(len(source))]


def _str(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def generate(argv: Sequence[str]) -> int:
    p = ArgumentParser(prog="python -m experiments.small_e_reading generate")
    p.add_argument("--checkpoint", required=True, help="a run's workdir, its checkpoints folder or one step's folder")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--split", default="validation")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--clone-texts", type=int, default=40,
                   help="held-out sentences per held-out voice (0: no cloning, no heldout_voices split needed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=100)
    p.add_argument("--batch", type=int, default=128)
    args = p.parse_args(argv)
    from small_e_jax.inference import Prompt, Synthesizer
    from small_e_jax.sampling import SamplingConfig

    synth = Synthesizer.from_checkpoint(args.checkpoint)
    sampling = SamplingConfig(temperature=args.temperature, top_k=args.top_k)
    rows = _records(args.data_dir, args.split)[: args.limit]
    out: dict[str, np.ndarray] = {}
    meta: dict = {"split": args.split, "items": [], "clone": [], "sampling": vars(args)}
    t0 = time.time()
    for start in range(0, len(rows), args.batch):
        chunk = rows[start: start + args.batch]
        codes = synth.generate([_str(r["text"]) for r in chunk], sampling=sampling, seed=args.seed + start)
        for r, c in zip(chunk, codes):
            key = f"tts/{_str(r['source_id'])}"
            out[key] = c.astype(np.int16)
            meta["items"].append({"key": key, "text": _str(r["text"]), "speaker": _str(r["speaker"]),
                                  "source_id": _str(r["source_id"])})
    print(f"generated {len(rows)} in {time.time() - t0:.1f} s", flush=True)
    held = _records(args.data_dir, "heldout_voices") if args.clone_texts > 0 else []  # 0: no cloning
    texts = [_str(r["text"]) for r in rows[: args.clone_texts]]
    for voice in sorted({_str(r["speaker"]) for r in held}):
        mine = [r for r in held if _str(r["speaker"]) == voice]
        prompt_row = min(mine, key=lambda r: abs(float(r["duration"]) - 3.0))
        prompt = Prompt(codes=np.asarray(prompt_row["codes"]).T.astype(np.int32), text=_str(prompt_row["text"]))
        codes = synth.generate(texts, sampling=sampling, seed=args.seed, prompts=[prompt] * len(texts))
        for i, (r, c) in enumerate(zip(rows, codes)):
            key = f"clone/{voice}/{i:03d}"
            out[key] = c.astype(np.int16)
            meta["clone"].append({"key": key, "voice": voice, "text": texts[i], "source_id": _str(r["source_id"]),
                                  "prompt_id": _str(prompt_row["source_id"])})
        out[f"prompt/{voice}"] = np.asarray(prompt_row["codes"]).T.astype(np.int16)
        meta.setdefault("prompts", {})[voice] = {"source_id": _str(prompt_row["source_id"]),
                                                 "text": _str(prompt_row["text"]),
                                                 "duration": float(prompt_row["duration"])}
    out["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez_compressed(args.out, **out)
    print(f"wrote {args.out}: {len(meta['items'])} texts, {len(meta['clone'])} cloned, "
          f"{time.time() - t0:.1f} s", flush=True)
    return 0


def decode(argv: Sequence[str]) -> int:
    """``decode --codes X.npz --corpus DIR --out OUT``: the wavs of ``generate``'s codes, and the
    manifests the evaluation reads (``tts.jsonl``, ``tts_long.jsonl``: held-out sentences of >= 25
    words; ``clone_pairs.jsonl``: each cloned output against a real clip of its voice that is not
    the prompt; ``same_voice_pairs.jsonl`` / ``other_voice_pairs.jsonl``: real clips against real
    clips of the same / the other held-out voice)."""
    from pathlib import Path

    import soundfile as sf

    from small_e_jax.codec import load_codec

    p = ArgumentParser(prog="python -m experiments.small_e_reading decode")
    p.add_argument("--codes", required=True)
    p.add_argument("--corpus", required=True, help="the corpus folder (its manifest gives the real clips)")
    p.add_argument("--out", required=True)
    p.add_argument("--codec-weights", default="bundled")
    p.add_argument("--long-words", type=int, default=25)
    args = p.parse_args(argv)
    z = np.load(args.codes)
    meta = json.loads(bytes(z["meta"]).decode())
    out = Path(args.out).resolve()
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    codec = load_codec("dac_mini24", args.codec_weights, n_q=4)
    corpus = Path(args.corpus).resolve()
    real = [json.loads(line) for line in open(corpus / "manifest.jsonl")]
    by_id = {r["id"]: r for r in real}

    def write(key: str) -> str:
        codes = np.asarray(z[key]).T[None].astype(np.int32)  # [1, Q, F]
        wav = np.asarray(codec.decode(codes))[0] if codes.shape[-1] else np.zeros(1, np.float32)
        name = key.replace("/", "_") + ".wav"
        sf.write(out / "wavs" / name, wav, codec.sample_rate)
        return str(out / "wavs" / name)

    def dump(name: str, rows: list[dict]) -> None:
        with open(out / name, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)

    tts = [{"path": write(it["key"]), "text": it["text"], "speaker": it["speaker"], "id": it["source_id"]}
           for it in meta["items"]]
    dump("tts.jsonl", tts)
    dump("tts_long.jsonl", [r for r in tts if len(r["text"].split()) >= args.long_words])
    ids = {r["id"] for r in tts}
    dump("ground_truth.jsonl", [{"path": str(corpus / by_id[i]["path"]), "text": by_id[i]["text"],
                                 "speaker": by_id[i]["speaker"], "id": i} for i in sorted(ids) if i in by_id])
    dump("ground_truth_long.jsonl", [{"path": str(corpus / by_id[i]["path"]), "text": by_id[i]["text"], "id": i}
                                     for i in sorted(ids) if i in by_id
                                     and len(by_id[i]["text"].split()) >= args.long_words])
    voices = sorted(meta.get("prompts", {}))
    refs = {v: [r for r in real if r["speaker"] == v and r["id"] != meta["prompts"][v]["source_id"]] for v in voices}
    clone, same, other = [], [], []
    for n, it in enumerate(meta["clone"]):
        ref = refs[it["voice"]][n % len(refs[it["voice"]])]
        clone.append({"prompt": str(corpus / ref["path"]), "output": write(it["key"]), "voice": it["voice"],
                      "text": it["text"]})
    for v in voices:
        clips = refs[v]
        same += [{"prompt": str(corpus / clips[i]["path"]), "output": str(corpus / clips[i + 1]["path"]),
                  "voice": v} for i in range(0, len(clips) - 1, 2)]
        for w in voices:
            if w > v:
                other += [{"prompt": str(corpus / a["path"]), "output": str(corpus / b["path"])}
                          for a, b in zip(clips, refs[w])]
    dump("clone_pairs.jsonl", clone)
    dump("clone_tts.jsonl", [{"path": c["output"], "text": c["text"]} for c in clone])
    dump("same_voice_pairs.jsonl", same)
    dump("other_voice_pairs.jsonl", other)
    print(f"decoded {len(tts)} texts and {len(clone)} cloned outputs -> {out}")
    return 0


@entry_point
def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["generate"], ["decode"]):
        from small_e_jax.checkpoint import CheckpointError

        try:
            return (generate if argv[0] == "generate" else decode)(argv[1:])
        except (CheckpointError, OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            print(f"error: {argv[0]}: {type(err).__name__}: {err}", file=sys.stderr)
            return 2
    fixed: tuple[str, ...] = ()
    if "--plain" in argv:
        argv.remove("--plain")
        fixed = PLAIN
    return train_main(argv, default_preset="small_e_reading", fixed=fixed, doc=__doc__,
                      default_data="synthetic_corpus")


if __name__ == "__main__":
    sys.exit(main())
