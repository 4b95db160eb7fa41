"""Statistical primitives against known values (TensorRT-LLM accuracy_core formulas, exact binomials)."""
import math

import pytest

from harness.comparison import stats
from harness.errors import HarnessError


def test_trtllm_theta_and_threshold_match_accuracy_core_values():
    # tests/integration/defs/accuracy/accuracy_core.py, MMLU: NUM_SAMPLES 4096, sigma 50, alpha .05, beta .2
    assert stats.trtllm_theta(4096) == pytest.approx(2.747, abs=5e-4)
    assert stats.trtllm_threshold(4096, 68.17) - 68.17 == pytest.approx(-1.817, abs=5e-4)
    # GSM8K (1319 samples): offset -3.203, theta 4.841
    assert stats.trtllm_theta(1319) == pytest.approx(4.841, abs=5e-4)
    assert stats.trtllm_threshold(1319, 0.0) == pytest.approx(-3.203, abs=5e-4)
    # small diagnostic samples
    assert stats.trtllm_theta(100) == pytest.approx(17.58, abs=0.01)
    assert stats.trtllm_threshold(100, 70.0) == pytest.approx(70 - 11.63, abs=0.01)
    assert stats.trtllm_theta(50) == pytest.approx(24.86, abs=0.01)
    # lower-is-better flips the sign of the offset
    assert stats.trtllm_threshold(4096, 10.0, higher_is_better=False) == pytest.approx(11.817, abs=5e-4)


def test_trtllm_samples_needed_inverts_theta():
    n = stats.trtllm_samples_needed(2.747)
    assert 4090 <= n <= 4100
    assert stats.trtllm_theta(stats.trtllm_samples_needed(3.0)) <= 3.0
    assert stats.trtllm_theta(stats.trtllm_samples_needed(3.0) - 1) > 3.0


def test_wilson_known_values_and_edges():
    lo, hi = stats.wilson_interval(70, 100)
    assert lo == pytest.approx(0.6042, abs=1e-4) and hi == pytest.approx(0.7811, abs=1e-4)
    assert stats.wilson_interval(0, 100) == (0.0, pytest.approx(0.0370, abs=1e-4))
    lo, hi = stats.wilson_interval(100, 100)
    assert hi == 1.0 and lo == pytest.approx(0.9630, abs=1e-4)
    assert stats.wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(HarnessError):
        stats.wilson_interval(5, 3)


def test_mcnemar_exact_known_values():
    m = stats.mcnemar_exact(6, 1)  # P(X>=6 | 7) = 8/128
    assert m.p_regressed == pytest.approx(8 / 128)
    assert m.p_two_sided == pytest.approx(16 / 128)
    assert m.p_improved == pytest.approx(127 / 128)
    m = stats.mcnemar_exact(10, 0)
    assert m.p_regressed == pytest.approx(2 ** -10) and m.p_two_sided == pytest.approx(2 ** -9)
    m = stats.mcnemar_exact(0, 0)
    assert (m.p_two_sided, m.p_regressed, m.p_improved) == (1.0, 1.0, 1.0)
    # symmetric
    assert stats.mcnemar_exact(3, 9).p_two_sided == pytest.approx(stats.mcnemar_exact(9, 3).p_two_sided)
    assert stats.mcnemar_exact(3, 9).p_improved == pytest.approx(stats.mcnemar_exact(9, 3).p_regressed)
    with pytest.raises(HarnessError):
        stats.mcnemar_exact(-1, 2)


def test_paired_bootstrap_is_seeded_and_zero_when_runs_agree():
    a = [1, 1, 1, 0] * 25
    b = [1, 0, 1, 0] * 25
    ci = stats.paired_bootstrap_diff(a, b, n_boot=2000, seed=3)
    assert ci.diff == pytest.approx(-0.25)
    assert ci.lo < -0.25 < ci.hi < 0
    assert ci == stats.paired_bootstrap_diff(a, b, n_boot=2000, seed=3)
    same = stats.paired_bootstrap_diff(a, a)
    assert (same.diff, same.lo, same.hi) == (0.0, 0.0, 0.0)
    assert math.isnan(stats.paired_bootstrap_diff([], []).diff)


def test_exceedance_test_binomial_tail():
    ex = stats.exceedance_test([0.0] * 90 + [1.0] * 10, tolerance=0.01, allowed_rate=0.05)
    assert ex.k == 10 and ex.rate == pytest.approx(0.1)
    # P(Bin(100, .05) >= 10)
    assert ex.p == pytest.approx(0.02819, abs=1e-4)
    assert stats.exceedance_test([0.0] * 50, 0.01, 0.05).p == 1.0
    assert stats.exceedance_test([float("nan"), 0.0], 0.01, 0.05).k == 1  # NaN counts as exceeding
    with pytest.raises(HarnessError):
        stats.exceedance_test([0.1], -1.0, 0.05)


def test_sign_flip_exact_and_monte_carlo():
    exact = stats.sign_flip_test([-1.0, -2.0, -0.5, -0.1])
    assert exact.n_perm == 0 and exact.p_less == pytest.approx(1 / 16)
    assert exact.p_two_sided == pytest.approx(2 / 16)
    mc = stats.sign_flip_test([-1.0, -2.0, -0.5, 0.1] * 10, n_perm=4999, seed=1)
    assert mc.p_less < 0.001 and mc.p_greater > 0.99 and mc.n_perm == 4999
    assert stats.sign_flip_test([0.0] * 30).p_two_sided == 1.0
    assert stats.sign_flip_test([float("nan"), 1.0]).n == 1
