"""docs/data.md's own-data recipe: its example clips and split (fast), and every command of it,
as written, end to end (slow: build, train, synthesize, evaluate)."""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from data_pipeline.example_clips import write_example
from data_pipeline.sources import read_folder, validation_warning

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "data.md"
# Only what makes the run short is added; the user's key=value overrides win, so appending works.
SHORTER = {"experiments.librilight_medium": ["trainer.steps=6", "trainer.eval_every=3", "trainer.log_every=3",
                                             "checkpoint.save_every_steps=3", "optimizer.warmup_steps=2"],
           "small_e_jax.synthesize": ["--max-frames", "40"]}


def recipe_commands() -> list[list[str]]:
    """The commands between the recipe markers of docs/data.md."""
    text = DOC.read_text()
    block = text.split("<!-- recipe:start -->")[1].split("<!-- recipe:end -->")[0]
    return [shlex.split(line) for line in block.splitlines() if line.startswith("python -m ")]


def test_recipe_is_documented_and_example_clips_split_as_it_says(tmp_path):
    commands = recipe_commands()
    modules = [c[2] for c in commands]
    assert modules == ["data_pipeline.example_clips", "data_pipeline.build", "experiments.librilight_medium",
                       "small_e_jax.synthesize", "small_e_jax.synthesize", "small_e_jax.evaluate",
                       "small_e_jax.evaluate"]
    ids = write_example(tmp_path / "my_voice", 20)
    assert len(ids) == 20 and len((tmp_path / "my_voice" / "lines.txt").read_text().splitlines()) == 3
    utts = read_folder(tmp_path / "my_voice", validation=4)  # the recipe's --validation 4
    assert sum(u.split == "validation" for u in utts) == 4 and all(Path(u.path).exists() for u in utts)
    assert "4 utterances of 20" in validation_warning(utts)  # 4 is too few to mean much: it says so


@pytest.mark.slow
def test_recipe_end_to_end(tmp_path):
    pytest.importorskip("faster_whisper")  # the recipe's last step scores with Whisper
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    outputs = []
    for command in recipe_commands():
        argv = [sys.executable, *command[1:], *SHORTER.get(command[2], [])]
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{shlex.join(command)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        outputs.append(done.stdout + done.stderr)
    build, train = outputs[1], outputs[2]
    assert "train=16, validation=4" in build and "validation split holds 4 utterances" in build
    assert "done: step 6" in train and "tensorboard --logdir" in train
    assert (tmp_path / "hello.wav").stat().st_size > 1000
    rows = [json.loads(line) for line in (tmp_path / "samples" / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all((tmp_path / "samples" / r["path"]).exists() for r in rows)
    assert math.isfinite(json.loads((tmp_path / "perplexity.json").read_text())["perplexity"])
    wer = json.loads((tmp_path / "wer.json").read_text())
    assert wer["utterances"] == 3 and 0 <= wer["wer"]
