"""End to end on CPU with a tiny codec: the loss falls, a stopped run resumes to the same weights,
exported weights reload through load_codec and give the trained model's codes, quality runs.

Slow (three compilations of a full train step on a 2-core CPU; a persistent compilation cache
shares them): ``pytest -m slow tests/codec/test_codec_train.py``.
"""

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from small_e_jax.cli.codec_train import parse_args
from small_e_jax.codec import load_codec
from small_e_jax.eval import codec_quality as quality
from small_e_jax.codec.dac import random_init
from small_e_jax.codec.dac_config import DACConfig
from small_e_jax.codec.training.config import CodecTrainConfig, check_resumable
from small_e_jax.codec.training.data import MINI_CORPUS, load_clips, read_manifest
from small_e_jax.codec.training.step import init_params_from
from small_e_jax.codec.training.train import train
from small_e_jax.codec.weights import load_dac, model_to_arrays, save_model
from small_e_jax.eval.text_norm import normalize

TINY = dict(model_overrides='{"encoder_dim": 4, "decoder_dim": 32, "codebook_size": 64}', max_clips=24,
            eval_clips=4, batch_size=4, segment_seconds=0.25, steps=24, warmup_steps=2, learning_rate=3e-3,
            log_every=4, eval_every=12, checkpoint_every=12, progress_bar=False)


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory):
    old = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("jax_cache")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    yield
    jax.config.update("jax_compilation_cache_dir", old)


def _losses(workdir):
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r["split"] == "train"]


@pytest.mark.slow
def test_train_resume_export_reload(tmp_path, compile_cache):
    full = train(CodecTrainConfig(workdir=str(tmp_path / "a"), **TINY))
    losses = _losses(tmp_path / "a")
    assert len(losses) == 6 and np.all(np.isfinite(losses))
    assert np.mean(losses[-2:]) < 0.9 * np.mean(losses[:2]), losses
    assert full["step"] == 24

    # Stop half-way, then resume in the same workdir: same batches, same keys, same weights.
    half = train(CodecTrainConfig(workdir=str(tmp_path / "b"), stop_step=12, **TINY))
    assert half["step"] == 12
    resumed = train(CodecTrainConfig(workdir=str(tmp_path / "b"), **TINY))
    assert resumed["step"] == 24
    a = jax.tree_util.tree_leaves(full["params"])
    b = jax.tree_util.tree_leaves(resumed["params"])
    for x, y in zip(a, b):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)

    # Exported weights are the trained ones and reload through load_codec with identical codes.
    export = full["export_dir"]
    reloaded = load_dac(export)
    trained = nnx.merge(full["graphdef"], full["params"])
    for name, arr in model_to_arrays(trained).items():
        np.testing.assert_array_equal(model_to_arrays(reloaded)[name], arr)
    codec = load_codec("dac_mini24", str(export))
    clip = load_clips(MINI_CORPUS, "validation", 24_000, limit=1, progress=False)[0].audio
    clip = clip[: len(clip) // 320 * 320]
    codes = codec.encode(clip[None], 24_000)
    ref_codes, _ = trained.encode(jax.numpy.asarray(clip[None]))
    np.testing.assert_array_equal(codes, np.asarray(ref_codes))

    # The quality command runs on the export.
    result = quality.evaluate(codec, limit=2)
    assert result["clips"] == 2 and result["mel_distance"] > 0 and result["stft_distance"] > 0
    assert len(result["codebook_usage"]["perplexity"]) == 4


@pytest.mark.slow
def test_gan_training_runs(tmp_path, compile_cache):
    cfg = CodecTrainConfig(workdir=str(tmp_path), gan=True, **{**TINY, "steps": 4, "log_every": 2})
    out = train(cfg)
    assert out["step"] == 4
    m = out["last_metrics"]
    for key in ("disc_loss", "adversarial", "feature", "mel", "dead_codes"):
        assert np.isfinite(m[key]), key
    assert m["disc_loss"] > 0 and m["feature"] > 0


def test_resume_refuses_other_model_config():
    saved = {"codec": "dac_mini24", "learning_rate": 5e-4, "steps": 10}
    check_resumable({**saved, "steps": 99}, CodecTrainConfig(learning_rate=5e-4))  # steps may change
    with pytest.raises(ValueError, match="learning_rate"):
        check_resumable(saved, CodecTrainConfig(learning_rate=1e-3))


def test_command_line_parsing():
    cfg = parse_args(["--workdir", "w", "--max-minutes", "8", "--batch-size", "32", "--no-progress-bar"])
    assert cfg.workdir == "w" and cfg.max_minutes == 8.0 and cfg.batch_size == 32 and cfg.progress_bar is False
    assert cfg.segment_samples() == 24_000
    with pytest.raises(ValueError, match="batch-size"):
        parse_args(["--batch-size", "0"]).validate()
    with pytest.raises(ValueError, match="unknown DAC preset"):
        parse_args(["--codec", "nope"]).validate()
    with pytest.raises(ValueError, match="JSON"):
        parse_args(["--model-overrides", "{bad"]).validate()


def test_codec_training_loads_no_draccus_or_grain():
    """The codec trainer runs on an image without draccus, grain or TFDS (docs/codec_training.md):
    its command, the shared checkpoint package, optimizer builder and metric logger load none of them."""
    code = ("import sys\n"
            "import small_e_jax.checkpoint, small_e_jax.metrics, small_e_jax.optim\n"
            "from small_e_jax.codec.training import train\n"
            "from small_e_jax.cli.codec_train import parse_args\n"
            "parse_args(['--workdir', 'w']).validate()\n"
            "loaded = sorted({m.split('.')[0] for m in sys.modules} & {'draccus', 'grain', 'tensorflow_datasets'})\n"
            "print(loaded)\n"
            "sys.exit(1 if loaded else 0)\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


def test_quality_error_rates_through_the_asr_hook():
    """WER/CER of originals and resyntheses via the hook (jiwer after the Whisper-style
    normaliser): the fake transcriber drops the last word of each original and the last two of
    each resynthesis (it is called in that order)."""
    codec = load_codec("dac_mini24", None)  # random weights: the hook, not the codec, is tested
    texts = [r["text"] for r in read_manifest(MINI_CORPUS, "validation")[:2]]
    calls = []

    def fake_asr(wavs, sample_rate):
        assert len(wavs) == 2 and sample_rate == 24_000
        calls.append(1)
        return [" ".join(t.split()[:-len(calls)]) for t in texts]

    result = quality.evaluate(codec, limit=2, asr=fake_asr)
    n_words = sum(len(normalize(t).split()) for t in texts)
    assert result["wer_original"] == pytest.approx(2 / n_words)
    assert result["wer_resynthesized"] == pytest.approx(4 / n_words)
    assert result["wer_ratio"] == pytest.approx(2.0)
    assert 0 < result["cer_original"] < result["cer_resynthesized"]


def test_load_asr():
    assert quality.load_asr("os.path:basename") is __import__("os").path.basename
    with pytest.raises(ValueError, match="whisper"):
        quality.load_asr("no_colon")


def test_init_from_exported_weights(tmp_path):
    cfg = DACConfig(sample_rate=8000, encoder_dim=2, encoder_rates=(2, 4), decoder_dim=8, decoder_rates=(4, 2),
                    n_codebooks=2, codebook_size=16, codebook_dim=4)
    save_model(tmp_path / "w", random_init(cfg, 1))
    target = random_init(cfg, 2)
    init_params_from(target, str(tmp_path / "w"))
    for name, arr in model_to_arrays(random_init(cfg, 1)).items():
        np.testing.assert_array_equal(model_to_arrays(target)[name], arr)
    with pytest.raises(ValueError, match="holds a"):
        init_params_from(random_init(cfg.replace(codebook_size=32), 0), str(tmp_path / "w"))


@pytest.mark.slow  # compiles a codec train step (~35 s on 2 cores)
def test_profile_train_on_cpu(tmp_path, capsys):
    """The codec step profiler builds the run's step from train flags, times it and records it
    (on a CPU: host events instead of a device timeline)."""
    from benchmarks import codec_profile_train as profile_train

    record, summary = tmp_path / "results.jsonl", tmp_path / "profile.json"
    assert profile_train.main(["--profile-steps", "2", "--top", "5", "--record", str(record), "--out", str(summary),
                               "--model-overrides", TINY["model_overrides"], "--batch-size", "2",
                               "--segment-seconds", "0.25"]) == 0
    printed = capsys.readouterr().out
    assert "ms per step back to back" in printed and "host events" in printed
    (r,) = [json.loads(line) for line in record.read_text().splitlines()]
    assert r["name"] == "codec_train_step" and r["backend"] == "dac_mini24/precision=default"
    assert r["shape"] == {"B": 2, "samples": 5760} and r["fwd_bwd_tokens_per_s"] > 0
    assert json.loads(summary.read_text())["wall_ms_per_step"] > 0
    assert profile_train.main(["--profile-steps", "0"]) == 2
