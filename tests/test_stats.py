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


# -- the verdict's paired intervals ------------------------------------------------------------


def test_trtllm_samples_needed_is_exact_at_the_boundary():
    assert stats.trtllm_samples_needed(stats.trtllm_theta(4096)) == 4096
    assert stats.trtllm_samples_needed(stats.trtllm_theta(100)) == 100
    assert stats.trtllm_theta(stats.trtllm_samples_needed(3.0)) <= 3.0 < stats.trtllm_theta(
        stats.trtllm_samples_needed(3.0) - 1)


def test_paired_proportion_interval_is_honest_without_discordant_pairs():
    # no discordant pair at all: Tango's score bound z^2 / (n + z^2), not the bootstrap's (0, 0)
    z2 = 1.6448536269514722 ** 2
    for n in (50, 100, 500):
        d = stats.paired_proportion_difference(0, 0, n, 0.05)
        assert d.mean == 0 and d.hi == pytest.approx(z2 / (n + z2), rel=1e-6) and d.lo == pytest.approx(-d.hi)
    d = stats.paired_proportion_difference(8, 0, 500, 0.05)
    assert d.hi < 0 and d.p_less == pytest.approx(stats.mcnemar_exact(8, 0).p_regressed)


def test_paired_proportion_interval_covers_at_its_level():
    import numpy as np

    rng = np.random.default_rng(0)
    n, p_loss, p_gain, covered = 200, 0.06, 0.03, 0
    for _ in range(1000):
        u = rng.random(n)
        b, c = int((u < p_loss).sum()), int(((u >= p_loss) & (u < p_loss + p_gain)).sum())
        d = stats.paired_proportion_difference(b, c, n, 0.05)
        covered += d.lo <= p_gain - p_loss <= d.hi
    assert 0.87 <= covered / 1000 <= 0.95  # a 90% interval


def test_tail_guarded_interval_does_not_miss_rare_faults():
    import numpy as np

    rng = np.random.default_rng(1)
    missed = 0
    for _ in range(500):  # 2% of prompts lose 70 points of the right answer's probability: -1.4 points
        d = rng.normal(0, 0.02, 100)
        d[rng.random(100) < 0.02] = -0.7
        missed += stats.tail_guarded_mean(d.tolist(), 0.05).lo > -0.014
    assert missed <= 25  # its lower bound is below the true mean in >= 95% of draws
    # and it narrows with n: clean noise is equivalent within +-1 point at a few hundred pairs
    clean = rng.normal(0, 0.02, 800).tolist()
    r = stats.tail_guarded_mean(clean, 0.05)
    assert -0.01 < r.lo and r.hi < 0.01
    assert 200 < stats.tail_guarded_pairs_needed(clean[:100], 0.01) < 800


def test_benjamini_hochberg_matches_the_step_up_rule():
    q = stats.benjamini_hochberg([0.01, 0.04, None, 0.03, 0.5])
    assert q[2] is None
    assert [None if x is None else round(x, 6) for x in q] == [0.04, 0.053333, None, 0.053333, 0.5]
