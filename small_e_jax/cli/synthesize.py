"""``small-e-synthesize`` / ``python -m small_e_jax.synthesize``: text to speech from a training
checkpoint (docs/inference.md). Its usage is :data:`USAGE` (the ``--help`` text)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile

from small_e_jax.checkpoint import CheckpointError
from small_e_jax.config import ConfigError
from small_e_jax.inference import Synthesizer
from small_e_jax.sampling import SamplingConfig
from small_e_jax.cli import ArgumentParser, entry_point, error, one_line

USAGE = """Text to speech from a training checkpoint (or, without --checkpoint, the model shipped in the package).

    python -m small_e_jax.synthesize --text "Hello there." --out x.wav          # the shipped model
    python -m small_e_jax.synthesize --checkpoint runs/tiny/checkpoints --text "Hello there." --out x.wav
    python -m small_e_jax.synthesize --checkpoint DIR --texts-file lines.txt --out outdir/
    python -m small_e_jax.synthesize --checkpoint DIR --text "..." --out x.wav --stream
    python -m small_e_jax.synthesize --checkpoint DIR --text "..." --out x.wav \\
        --prompt-wav voice.wav --prompt-text "What the voice says."     # voice cloning
    python -m small_e_jax.synthesize --checkpoint DIR --text "..." --out x.wav --ist voice.npz

One text: ``--out`` is the wav path. Several (``--texts-file``, one text per line): ``--out`` is
a folder and the files are ``0000.wav, 0001.wav, ...``, generated as one batch, with
``manifest.jsonl`` (``{"path", "text"}`` per file: ``python -m small_e_jax.evaluate wer
--manifest OUT/manifest.jsonl`` scores them). ``--long``
splits a long text into sentences and carries the voice (recurrent state) across them.
``--stream`` writes the wav progressively as audio is produced and reports the time to first
audio. Exit code 2 with a one-line ``error: ...`` on bad input or a bad checkpoint.
"""


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m small_e_jax.synthesize", description=USAGE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None,
                   help="a run's workdir, its checkpoints folder, one step's folder or an exported model "
                        "(default: the model shipped in the package)")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: newest)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="the text to speak")
    src.add_argument("--texts-file", type=Path, help="a UTF-8 file, one text per line (one batch)")
    p.add_argument("--out", type=Path, required=True, help="wav path (one text) or folder (--texts-file)")
    p.add_argument("--long", action="store_true", help="split into sentences, carry the voice across them")
    p.add_argument("--stream", action="store_true", help="write the wav progressively (one text)")
    p.add_argument("--chunk-frames", type=int, default=25, help="frames per streamed chunk")
    s = p.add_argument_group("sampling")
    s.add_argument("--greedy", action="store_true", help="argmax decoding")
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--top-k", type=int, default=100, help="0 = off")
    s.add_argument("--top-p", type=float, default=1.0, help="1 = off")
    s.add_argument("--repetition-penalty", type=float, default=1.0, help="1 = off")
    s.add_argument("--repetition-window", type=int, default=16)
    s.add_argument("--cfg-scale", type=float, default=1.0, help="classifier-free guidance (1 = off)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--max-frames", type=int, default=None, help="default: the checkpoint's data.max_frames")
    v = p.add_argument_group("voice")
    v.add_argument("--prompt-wav", type=Path, help="a 3-10 s clip of the voice to clone")
    v.add_argument("--prompt-text", help="the transcript of --prompt-wav")
    v.add_argument("--ist", type=Path, help="initial states from python -m small_e_jax.ist (.npz)")
    p.add_argument("--codec-weights", default=None, help="codec weights dir (default: the checkpoint config's)")
    p.add_argument("--bf16", action="store_true", help="cast the parameters to bfloat16")
    p.add_argument("--decode-kernels", choices=("auto", "xla", "pallas"), default=None,
                   help="decode step kernels (model.decode_kernels; default: the checkpoint's): "
                        "pallas = fused GLA block kernels, xla = XLA ops, auto = pallas on a GPU "
                        "for up to 4 rows")
    p.add_argument("--min-rows", type=int, default=None,
                   help="decode fewer texts as this many rows (default: 4 on GPU with XLA's "
                        "decode step, else 1)")
    args = p.parse_args(argv)
    if args.stream and (args.texts_file or args.long):
        p.error("--stream takes one --text (without --long)")
    if (args.prompt_wav is None) != (args.prompt_text is None):
        p.error("--prompt-wav and --prompt-text go together")
    return args


def _texts(args: argparse.Namespace) -> list[str]:
    if args.text is not None:
        return [args.text]
    if not args.texts_file.exists():
        raise ValueError(f"--texts-file {args.texts_file} does not exist")
    try:
        lines = args.texts_file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"--texts-file {args.texts_file} is not UTF-8 (byte 0x{exc.object[exc.start]:02x} "
                         f"at offset {exc.start})") from None
    texts = [line.strip() for line in lines if line.strip()]
    if not texts:
        raise ValueError(f"--texts-file {args.texts_file} has no text")
    return texts


def _check_inputs(args: argparse.Namespace, texts: list[str]) -> None:
    """Refuse bad arguments and input files before the (slow) checkpoint restore."""
    for i, text in enumerate(texts):
        if not text.strip():
            raise ValueError("--text is empty" if args.text is not None else f"--texts-file line {i + 1} is empty")
    for flag, value in (("--max-frames", args.max_frames), ("--chunk-frames", args.chunk_frames),
                        ("--min-rows", args.min_rows)):
        if value is not None and value <= 0:
            raise ValueError(f"{flag} must be > 0, got {value}")
    for flag, path in (("--prompt-wav", args.prompt_wav), ("--ist", args.ist)):
        if path is not None and not path.is_file():
            raise ValueError(f"{flag} {path} does not exist")
    if args.prompt_wav is not None:
        try:
            soundfile.info(str(args.prompt_wav))
        except (RuntimeError, soundfile.LibsndfileError) as exc:
            raise ValueError(f"--prompt-wav {args.prompt_wav} is not readable audio ({one_line(exc)})") from None


def run(args: argparse.Namespace) -> int:
    texts = _texts(args)
    _check_inputs(args, texts)
    sampling = SamplingConfig(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                              repetition_penalty=args.repetition_penalty,
                              repetition_window=args.repetition_window, greedy=args.greedy,
                              cfg_scale=args.cfg_scale)
    t0 = time.perf_counter()
    if args.checkpoint is None:  # the shipped model; its absence is a one-line error (FileNotFoundError)
        from small_e_jax.shipped import DEFAULT_MODEL, pretrained_path

        try:
            args.checkpoint = str(pretrained_path(DEFAULT_MODEL))
        except FileNotFoundError as err:
            raise FileNotFoundError(f"no --checkpoint given and {err}; pass --checkpoint with a trained run "
                                    "(docs/inference.md)") from None
    synth = Synthesizer.from_checkpoint(args.checkpoint, step=args.step, codec_weights=args.codec_weights,
                                        param_dtype="bfloat16" if args.bf16 else None,
                                        decode_kernels=args.decode_kernels, min_rows=args.min_rows)
    print(f"restored {args.checkpoint} (step {synth.checkpoint_step}) in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
    kwargs = dict(sampling=sampling, seed=args.seed, max_frames=args.max_frames)
    if args.ist is not None:
        from small_e_jax.ist import load_initial_states

        kwargs["initial_states"] = load_initial_states(args.ist, synth.model)
    if args.prompt_wav is not None:
        wav, rate = soundfile.read(str(args.prompt_wav), dtype="float32")
        kwargs["prompts"] = [synth.make_prompt(wav, rate, args.prompt_text)] * len(texts)
    rate = synth.sample_rate

    if args.stream:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        with soundfile.SoundFile(str(args.out), "w", samplerate=rate, channels=1, subtype="FLOAT") as f:
            total = 0
            for chunk in synth.stream(texts[0], chunk_frames=args.chunk_frames, **kwargs):
                if len(chunk.audio):
                    if total == 0:
                        print(f"first audio after {chunk.elapsed_s * 1000:.0f} ms", file=sys.stderr)
                    f.write(np.clip(chunk.audio, -1, 1))
                    f.flush()
                    total += len(chunk.audio)
        print(f"wrote {args.out} ({total / rate:.2f} s) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        return 0

    t0 = time.perf_counter()
    if args.long:
        if "prompts" in kwargs:
            kwargs["prompts"] = kwargs["prompts"][:1]  # one text at a time
        wavs = []
        for text in texts:
            pieces = synth.generate_long(text, **kwargs)
            wavs.append(np.concatenate(synth.decode_audio(pieces)))
    else:
        wavs = synth.synthesize(texts, **kwargs)
    elapsed = time.perf_counter() - t0
    seconds = sum(len(w) for w in wavs) / rate
    if len(texts) == 1 and args.text is not None:
        paths = [args.out]
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        paths = [args.out / f"{i:04d}.wav" for i in range(len(texts))]
    for path, wav in zip(paths, wavs):
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(str(path), np.clip(wav, -1, 1), rate)
        if len(wav) == 0:
            print(f"warning: {path} is empty (the model stopped at once)", file=sys.stderr)
    if len(paths) > 1 or args.text is None:  # a folder: say which file speaks which text
        with open(args.out / "manifest.jsonl", "w", encoding="utf-8") as f:
            for path, text in zip(paths, texts):
                f.write(json.dumps({"path": path.name, "text": text}) + "\n")
    print(f"wrote {len(paths)} file(s), {seconds:.2f} s of audio in {elapsed:.1f} s "
          f"(real-time factor {elapsed / max(seconds, 1e-9):.3f})", file=sys.stderr)
    return 0


@entry_point
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(args)
    except (CheckpointError, ConfigError, ValueError, FileNotFoundError) as err:
        return error(err, 2)


if __name__ == "__main__":
    sys.exit(main())
