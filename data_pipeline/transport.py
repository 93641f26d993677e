"""Move a built dataset between machines in a third less space: pack it into one ``.npz``, unpack it
back into the same TFDS ArrayRecord dataset.

    python -m data_pipeline.transport pack --dataset synthetic_corpus --codec dac_mini24 --data-dir D --out x.npz
    python -m data_pipeline.transport unpack x.npz --data-dir D2

A built dataset stores each codec code as int16 (2 bytes) in a serialized example, and general
compressors barely shrink it (codes are near-uniform 10-bit numbers: xz/zstd save ~12%). Packing
keeps exactly the information: codes bit-packed at ``ceil(log2(codebook size))`` bits, text tokens
as uint8 when the vocabulary allows it, the rest as arrays. ``unpack`` re-serializes every example
with the dataset's own TFDS features into the same shards in the same order, so the loader sees
the same records (tested record by record). Why here: our GPU machines take at
most 64 MiB a trip, and 32 hours of 4 x 10-bit codes at 75 frames/s are 43 MB packed, 69 MB as built.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np


FORMAT_VERSION = 1


def pack_bits(values: np.ndarray, bits: int) -> np.ndarray:
    """Non-negative ints ``[N]`` (< 2**bits) -> uint8 ``[ceil(N * bits / 8)]``, little-endian bit order."""
    v = np.asarray(values, np.uint32)
    if v.size and int(v.max()) >= (1 << bits):
        raise ValueError(f"value {int(v.max())} does not fit in {bits} bits")
    b = ((v[:, None] >> np.arange(bits, dtype=np.uint32)) & 1).astype(np.uint8)
    return np.packbits(b.reshape(-1), bitorder="little")


def unpack_bits(packed: np.ndarray, bits: int, n: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``n`` int values."""
    b = np.unpackbits(packed, count=n * bits, bitorder="little").reshape(n, bits).astype(np.uint32)
    return (b << np.arange(bits, dtype=np.uint32)).sum(axis=1).astype(np.int64)


def _builder(dataset: str, codec: str, n_q: int, data_dir: str):
    from data_pipeline.builders import BUILDERS

    if dataset not in BUILDERS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(BUILDERS)}")
    return BUILDERS[dataset](codec=codec, n_q=n_q, data_dir=data_dir)


def pack(dataset: str, codec: str, data_dir: str, out: Path, n_q: int = 4,
         splits: Optional[list[str]] = None) -> dict:
    """Write ``out`` (.npz) holding the splits of a built dataset; returns a summary."""
    builder = _builder(dataset, codec, n_q, data_dir)
    if not builder.is_prepared():
        raise FileNotFoundError(f"{dataset}/{codec} is not built in {builder.data_dir}")
    info_dir = Path(builder.data_dir)
    sources = builder.as_data_source()
    splits = splits or sorted(sources)
    arrays: dict[str, np.ndarray] = {}
    meta = {"format": FORMAT_VERSION, "dataset": dataset, "codec": codec, "n_q": n_q,
            "version": info_dir.name, "splits": {},
            "dataset_info": (info_dir / "dataset_info.json").read_text(),
            "features": (info_dir / "features.json").read_text()}
    shards = sorted(info_dir.glob("*.array_record-*"))
    if shards:  # the writer's options (compression, grouping), so unpack writes the same bytes
        from array_record.python.array_record_module import ArrayRecordReader

        reader = ArrayRecordReader(str(shards[0]))
        meta["writer_options"] = reader.writer_options_string()
        reader.close()
    for split in splits:
        if split not in sources:
            raise ValueError(f"{dataset} has no split {split!r}; it has {sorted(sources)}")
        src = sources[split]
        recs = [src[i] for i in range(len(src))]
        codes = np.concatenate([r["codes"] for r in recs], axis=1) if recs else np.zeros((n_q, 0), np.int16)
        tokens = np.concatenate([r["text_tokens"] for r in recs]) if recs else np.zeros(0, np.int32)
        bits = max(1, int(codes.max(initial=0)).bit_length())
        tok_dtype = np.uint8 if tokens.size == 0 or (tokens.min() >= 0 and tokens.max() < 256) else np.int32
        arrays[f"{split}/codes"] = pack_bits(codes.reshape(-1), bits)
        arrays[f"{split}/frames"] = np.array([r["codes"].shape[1] for r in recs], np.int32)
        arrays[f"{split}/tokens"] = tokens.astype(tok_dtype)
        arrays[f"{split}/n_tokens"] = np.array([len(r["text_tokens"]) for r in recs], np.int32)
        arrays[f"{split}/duration"] = np.array([r["duration"] for r in recs], np.float32)
        for key in ("text", "speaker", "source_id"):
            arrays[f"{split}/{key}"] = np.frombuffer(b"\n".join(_b(r[key]) for r in recs), np.uint8)
        meta["splits"][split] = {"examples": len(recs), "bits": bits, "code_count": int(codes.size)}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        np.savez_compressed(f, **arrays)
    return {"out": str(out), "bytes": out.stat().st_size,
            **{s: v["examples"] for s, v in meta["splits"].items()}}


def _b(x) -> bytes:
    return x if isinstance(x, bytes) else str(x).encode()


def unpack(path: Path, data_dir: str) -> dict:
    """Re-create the packed dataset under ``data_dir`` (TFDS layout); returns a summary."""
    from array_record.python.array_record_module import ArrayRecordWriter

    z = np.load(path)
    meta = json.loads(bytes(z["meta"]).decode())
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: unknown pack format {meta.get('format')!r}")
    target = Path(data_dir) / meta["dataset"] / meta["codec"] / meta["version"]
    if target.exists():
        raise FileExistsError(f"{target} exists; unpack into another --data-dir or remove it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"incomplete.{meta['version']}")
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "dataset_info.json").write_text(meta["dataset_info"])
    (tmp / "features.json").write_text(meta["features"])
    builder = _builder(meta["dataset"], meta["codec"], meta["n_q"], str(Path(data_dir)))
    features = builder.info.features
    info = json.loads(meta["dataset_info"])
    n_q = meta["n_q"]
    for split, sm in meta["splits"].items():
        frames = z[f"{split}/frames"]
        codes = unpack_bits(z[f"{split}/codes"], sm["bits"], sm["code_count"]).astype(np.int16).reshape(n_q, -1)
        n_tokens = z[f"{split}/n_tokens"]
        tokens = z[f"{split}/tokens"].astype(np.int32)
        strs = {k: bytes(z[f"{split}/{k}"]).split(b"\n") if sm["examples"] else []
                for k in ("text", "speaker", "source_id")}
        dur = z[f"{split}/duration"]
        f_off = np.concatenate([[0], np.cumsum(frames)])
        t_off = np.concatenate([[0], np.cumsum(n_tokens)])
        split_info = next(s for s in info["splits"] if s["name"] == split)
        shard_lengths = [int(x) for x in split_info["shardLengths"]]
        template = f"{meta['dataset']}-{split}.array_record-{{:05d}}-of-{len(shard_lengths):05d}"
        i = 0
        for shard, length in enumerate(shard_lengths):
            writer = ArrayRecordWriter(str(tmp / template.format(shard)), meta.get("writer_options", "group_size:1"))
            for _ in range(length):
                ex = {"codes": codes[:, f_off[i]: f_off[i + 1]], "text": strs["text"][i].decode(),
                      "text_tokens": tokens[t_off[i]: t_off[i + 1]], "speaker": strs["speaker"][i].decode(),
                      "duration": np.float32(dur[i]), "source_id": strs["source_id"][i].decode()}
                writer.write(features.serialize_example(ex))
                i += 1
            writer.close()
        if i != sm["examples"]:
            raise ValueError(f"{split}: {sm['examples']} examples packed, shards hold {i}")
    tmp.rename(target)
    return {"dataset": str(target), **{s: v["examples"] for s, v in meta["splits"].items()}}


if __name__ == "__main__":  # the command line: small_e_jax/cli/transport.py
    import runpy  # by name: the library never imports its command (no import circle)

    runpy.run_module("small_e_jax.cli.transport", run_name="__main__")
