"""MFU arithmetic, checked against hand-computed numbers."""

from __future__ import annotations

import pytest

from turngym.trainers.flops import learner_flops, mfu, peak_for


def test_full_parameter_step_is_six_n_t():
    # 6 · 1.5e9 · 4096 = 36,864 · 1e9 = 3.6864e13
    assert learner_flops(1_500_000_000, 4096) == 3.6864e13


def test_frozen_weights_skip_their_weight_gradients():
    # (4 · 7.6e9 + 2 · 4e7) · 4096 = 3.048e10 · 4096 = 1.2484608e14
    assert learner_flops(7_600_000_000, 4096, trainable=40_000_000) == pytest.approx(1.2484608e14)


def test_mfu_hand_example():
    # 3.6864e13 FLOPs in 0.1 s = 3.6864e14 FLOP/s of 9.89e14 → 37.274 %
    assert mfu(3.6864e13, 0.1, 989e12) == pytest.approx(0.372740, abs=1e-6)
    assert peak_for("NVIDIA H200") == 989e12 and peak_for("NVIDIA A100-SXM4-80GB") is None
    with pytest.raises(ValueError, match="seconds > 0"):
        mfu(1.0, 0.0, 989e12)
