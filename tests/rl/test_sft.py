"""The learning-rate schedule of supervised training (rl/sft.py)."""
from __future__ import annotations

import math

import pytest

from longshort.rl.sft import rate_factor


def test_a_full_decay_share_is_a_cosine_over_all_steps_after_the_warm_up():
    for step in range(0, 900, 7):
        cosine = min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * min(step, 800) / 800))
        assert rate_factor(step, steps=800, warmup=50, decay_share=1.0) == cosine


def test_the_rate_holds_its_peak_until_the_last_share_and_then_falls_to_zero():
    rates = [rate_factor(step, steps=1200, warmup=50, decay_share=0.25) for step in range(1201)]
    assert rates[0] == pytest.approx(1 / 50) and rates[49] == 1.0
    assert all(rate == 1.0 for rate in rates[49:901])
    assert rates[1050] == pytest.approx(0.5)
    assert all(later < earlier for earlier, later in zip(rates[900:], rates[901:]))
    assert rates[1200] == pytest.approx(0.0)
