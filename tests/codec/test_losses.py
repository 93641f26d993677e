"""Codec training losses: mel filterbank vs librosa, STFT vs a numpy reference, loss properties."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from small_e_jax.codec.training import losses

SR = 24_000


@pytest.mark.parametrize("sr,n_fft,n_mels", [(24_000, 32, 5), (24_000, 256, 40), (24_000, 2048, 320),
                                             (16_000, 512, 80), (44_100, 1024, 128)])
def test_mel_filterbank_matches_librosa(sr, n_fft, n_mels):
    librosa = pytest.importorskip("librosa")  # pinned in requirements-test.txt
    ours = losses.mel_filterbank(sr, n_fft, n_mels)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).T  # Slaney scale + norm, as DAC
    assert ours.shape == ref.shape == (n_fft // 2 + 1, n_mels)
    # fp32 storage of values up to ~0.1: absolute 1e-7 is ~1e-6 relative.
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-7)


def test_mel_scale_round_trip_and_anchor():
    f = np.array([0.0, 200.0, 999.0, 1000.0, 4000.0, 12_000.0])
    np.testing.assert_allclose(losses.mel_to_hz(losses.hz_to_mel(f)), f, rtol=1e-10, atol=1e-8)
    assert losses.hz_to_mel(np.array(1000.0)) == pytest.approx(15.0)  # Slaney: 3 mels / 200 Hz up to 1 kHz


def _numpy_stft(x: np.ndarray, window: int, hop: int) -> np.ndarray:
    pad = window // 2
    xp = np.pad(x, ((0, 0), (pad, pad)), mode="reflect")
    n = x.shape[1] // hop + 1
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window) / window)
    frames = np.stack([xp[:, i * hop:i * hop + window] for i in range(n)], axis=1)
    return np.fft.rfft(frames * w, axis=-1)


@pytest.mark.parametrize("window,length", [(32, 1000), (512, 4800), (2048, 9600)])
def test_stft_matches_numpy(window, length):
    x = np.random.default_rng(0).standard_normal((2, length)).astype(np.float32)
    ours = np.asarray(losses.stft(jnp.asarray(x), window))
    ref = _numpy_stft(x.astype(np.float64), window, window // 4)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-3 * np.abs(ref).max())


def _pair(seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(4800) / SR
    target = (0.5 * np.sin(2 * np.pi * 220 * t)[None] + 0.05 * rng.standard_normal((2, t.size))).astype(np.float32)
    pred = target + 0.1 * rng.standard_normal(target.shape).astype(np.float32)
    return jnp.asarray(pred), jnp.asarray(target)


@pytest.mark.parametrize("name", ["mel", "stft", "l1"])
def test_losses_zero_for_identical_positive_and_differentiable_otherwise(name):
    fn = {"mel": lambda p, t: losses.multiscale_mel_loss(p, t, SR),
          "stft": losses.multiscale_stft_loss, "l1": losses.waveform_l1}[name]
    pred, target = _pair()
    fn = jax.jit(fn)  # one compilation instead of op-by-op dispatch of the 7-scale graph
    assert float(fn(target, target)) == 0.0
    value, grad = jax.jit(jax.value_and_grad(fn))(pred, target)
    assert float(value) > 0.0
    grad = np.asarray(grad)
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0
    # A small step against the gradient lowers the loss.
    assert float(fn(pred - 1e-3 * grad / np.abs(grad).max(), target)) < float(value)


def test_mel_loss_gain_offset_is_exact():
    # Halving the amplitude shifts every log10 |X|^2 by log10(4): the loss is 7 scales x 0.602.
    _, target = _pair()
    got = float(jax.jit(lambda p, t: losses.multiscale_mel_loss(p, t, SR))(0.5 * target, target))
    assert got == pytest.approx(7 * 2 * np.log10(2.0), rel=1e-3)


def test_gradient_finite_on_digital_silence():
    silence = jnp.zeros((1, 4800))
    _, target = _pair()
    fn = jax.jit(jax.grad(lambda p: losses.multiscale_mel_loss(p, target[:1], SR)
                          + losses.multiscale_stft_loss(p, target[:1])))
    assert np.all(np.isfinite(np.asarray(fn(silence))))


def test_bad_inputs_raise():
    a = jnp.zeros((2, 4800))
    with pytest.raises(ValueError, match="one shape"):
        losses.multiscale_mel_loss(a, jnp.zeros((2, 4801)), SR)
    with pytest.raises(ValueError, match="divisor"):
        losses.stft(a, 512, hop=100)
    with pytest.raises(ValueError, match="n_fft"):
        losses.mel_filterbank(SR, 1, 10)
    with pytest.raises(ValueError, match="equal length"):
        losses.MelLossConfig(windows=(32, 64), n_mels=(5,))
