"""What the trainer tells the user: plain lines with an ETA off a terminal, the progress bar
only from the first (compiled) step, and a warning when the validation loss keeps rising."""

from __future__ import annotations

import time

from small_e_jax.metrics import MetricLogger, ValidationTrend, format_eta


def test_plain_lines_carry_an_eta_measured_after_compilation(tmp_path, capsys):
    logger = MetricLogger(tmp_path, total_steps=100, start_step=0, enabled=True, progress_bar=True,
                          tensorboard=False, interactive=False)
    logger.write(1, {"loss": 3.0}, "train")  # before any step finished: no rate, no ETA
    logger.update(1, 3.0)  # the first step (it compiled): the clock starts here
    time.sleep(0.05)
    logger.update(11, 2.0)
    logger.write(11, {"loss": 2.0}, "train")
    logger.close()
    first, second = capsys.readouterr().out.splitlines()
    assert logger.bar is None and first == "[train step 1] loss=3"
    assert second.startswith("[train step 11] loss=2 eta=0:00:")
    assert 0 < logger.eta(11) < 5  # 10 steps in ~0.05 s -> 89 more in well under 5 s


def test_progress_bar_starts_at_the_first_update(tmp_path):
    logger = MetricLogger(tmp_path, total_steps=10, start_step=0, enabled=True, progress_bar=True,
                          tensorboard=False, interactive=True)
    assert logger.bar is None  # not during compilation
    logger.update(1, 1.0)
    assert logger.bar is not None and logger.bar.n == 1
    logger.close()


def test_validation_loss_rising_in_a_row_is_warned():
    trend = ValidationTrend(patience=3)
    assert [trend.add(s, v) for s, v in ((1, 5.0), (2, 4.0), (3, 4.5), (4, 4.7))] == [None] * 4
    warning = trend.add(5, 4.9)
    assert warning is not None and "rose 3 evaluations in a row" in warning and "best 4.0000" in warning
    assert trend.add(6, 4.1) is None  # a fall resets the count
    assert ValidationTrend(patience=0).add(1, 1.0) is None and format_eta(3725.4) == "1:02:05"
