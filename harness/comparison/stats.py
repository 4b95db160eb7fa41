"""Statistical primitives behind every verdict: pure functions, no I/O.

Units: proportions (0..1) for Wilson intervals and the bootstrap; *points* (0..100) for the
TensorRT-LLM threshold/theta, exactly as ``accuracy_core.py`` uses them (sigma 50 = a Bernoulli
standard deviation of 0.5 expressed in points).

Why paired tests
----------------
Both runs answer the *same* prompts, so a per-sample pair (ref correct?, cand correct?) falls in
one of four cells. The concordant cells (both right, both wrong) say nothing about a difference;
only the discordant counts carry information:

    b = reference right, candidate wrong   ("losses")
    c = reference wrong, candidate right   ("gains")

Under H0 (no difference) each discordant pair is a fair coin, so b ~ Binomial(b + c, 1/2):
McNemar's *exact* test (``mcnemar_exact``). Its power depends on how many pairs disagree, not on
n, which is why a paired comparison at n = 100 resolves what an unpaired one needs thousands for.

``trtllm_theta`` / ``trtllm_threshold`` reproduce TensorRT-LLM's *unpaired* accuracy gate
(tests/integration/defs/accuracy/accuracy_core.py: compute_theta, compute_threshold), a one-tailed
two-sample z-test with sigma = 50 points. They are reported beside the paired numbers so users see
what the engine's own CI gate could resolve at the same n (theta(100) = 17.6 points; it needs
n = 4096 to get down to 2.75 points).

``exceedance_test`` and ``sign_flip_test`` are the two building blocks of the log-probability test
(see harness/comparison/verdict.py for how they combine): the first asks whether more samples diverge beyond
a tolerance than acceptable noise would produce, the second in which direction the reference
answer's log-probability moved.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

from harness.errors import HarnessError


def _check_alpha(alpha: float, name: str = "alpha") -> None:
    if not (isinstance(alpha, (int, float)) and 0.0 < alpha < 1.0):
        raise HarnessError(f"{name} must be between 0 and 1 (exclusive), got {alpha!r}; pass e.g. --{name} 0.05")


def _norm_ppf(q: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(q))


# ---------------------------------------------------------------------------------------------
# Wilson score interval


def wilson_interval(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k/n, as proportions (lo, hi).

    Unlike the normal (Wald) interval it stays inside [0, 1] and is sensible at k = 0 or k = n
    (e.g. 0/100 -> (0, 0.037)). n = 0 gives the uninformative (0, 1).
    """
    _check_alpha(alpha)
    if n < 0 or k < 0 or k > n:
        raise HarnessError(f"wilson_interval needs 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    z = _norm_ppf(1 - alpha / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    if k == 0:
        lo = 0.0
    if k == n:
        hi = 1.0
    return lo, hi


# ---------------------------------------------------------------------------------------------
# McNemar exact


@dataclass
class McNemar:
    """Exact McNemar test on discordant counts.

    b: reference right & candidate wrong; c: reference wrong & candidate right.
    p_regressed: one-sided P(X >= b), X ~ Bin(b + c, 1/2) (H1: candidate worse).
    p_improved:  one-sided P(X <= b)                         (H1: candidate better).
    p_two_sided: min(1, 2 * min(p_regressed, p_improved)) (the exact binomial two-sided p,
                 symmetric because the null proportion is 1/2).
    """

    b: int
    c: int
    p_two_sided: float
    p_regressed: float
    p_improved: float

    @property
    def discordant(self) -> int:
        return self.b + self.c

    def to_dict(self) -> dict:
        return {**asdict(self), "discordant": self.discordant}


def mcnemar_exact(b: int, c: int) -> McNemar:
    """McNemar's exact test (binomial on the discordant pairs). b = c = 0 gives p = 1."""
    if b < 0 or c < 0 or int(b) != b or int(c) != c:
        raise HarnessError(f"mcnemar_exact needs non-negative integer counts, got b={b!r}, c={c!r}")
    b, c = int(b), int(c)
    m = b + c
    if m == 0:
        return McNemar(b, c, 1.0, 1.0, 1.0)
    from scipy.stats import binom

    p_reg = float(binom.sf(b - 1, m, 0.5))  # P(X >= b)
    p_imp = float(binom.cdf(b, m, 0.5))  # P(X <= b)
    return McNemar(b, c, min(1.0, 2 * min(p_reg, p_imp)), min(1.0, p_reg), min(1.0, p_imp))


def discordant_counts(correct_ref: Sequence[bool], correct_cand: Sequence[bool]) -> tuple[int, int]:
    """(b, c) from paired correctness vectors."""
    if len(correct_ref) != len(correct_cand):
        raise HarnessError(f"paired vectors differ in length: {len(correct_ref)} vs {len(correct_cand)}")
    b = sum(1 for r, k in zip(correct_ref, correct_cand) if r and not k)
    c = sum(1 for r, k in zip(correct_ref, correct_cand) if k and not r)
    return b, c


# ---------------------------------------------------------------------------------------------
# Paired bootstrap


@dataclass
class BootstrapCI:
    """Paired bootstrap interval of mean(cand) - mean(ref), as proportions."""

    diff: float
    lo: float
    hi: float
    n: int
    n_boot: int
    alpha: float

    def to_dict(self) -> dict:
        return asdict(self)


def paired_bootstrap_diff(correct_a: Sequence[bool], correct_b: Sequence[bool], n_boot: int = 2000,
                          seed: int = 0, alpha: float = 0.05) -> BootstrapCI:
    """Percentile bootstrap CI of accuracy(b) - accuracy(a), resampling *pairs* (a = reference).

    Resampling pairs keeps the within-sample correlation that makes paired designs powerful.
    With no discordant pairs the interval is exactly (0, 0): the runs agree on every sample drawn.
    """
    import numpy as np

    _check_alpha(alpha)
    a = np.asarray(correct_a, dtype=float)
    b = np.asarray(correct_b, dtype=float)
    if a.shape != b.shape:
        raise HarnessError(f"paired vectors differ in length: {a.size} vs {b.size}")
    n = int(a.size)
    if n == 0:
        return BootstrapCI(float("nan"), float("nan"), float("nan"), 0, n_boot, alpha)
    d = b - a
    diff = float(d.mean())
    if not d.any():
        return BootstrapCI(diff, 0.0, 0.0, n, n_boot, alpha)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    chunk = max(1, 2_000_000 // n)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = d[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return BootstrapCI(diff, float(lo), float(hi), n, n_boot, alpha)


# ---------------------------------------------------------------------------------------------
# TensorRT-LLM's unpaired gate (tests/integration/defs/accuracy/accuracy_core.py)


def trtllm_theta(n: int, sigma: float = 50.0, alpha: float = 0.05, beta: float = 0.2) -> float:
    """Minimum detectable effect (points) of TensorRT-LLM's one-tailed two-sample test.

    Mirrors accuracy_core.compute_theta: scale = sqrt(2 sigma^2 / n);
    theta = -(Phi^-1(alpha) + Phi^-1(beta)) * scale.  theta(4096) = 2.747, theta(100) = 17.6.
    """
    _check_alpha(alpha)
    _check_alpha(beta, "beta")
    if n <= 0:
        raise HarnessError(f"trtllm_theta needs n > 0 samples, got {n}")
    scale = math.sqrt(2 * sigma**2 / n)
    return -(_norm_ppf(alpha) + _norm_ppf(beta)) * scale


def trtllm_threshold(n: int, ref: float, sigma: float = 50.0, alpha: float = 0.05,
                     higher_is_better: bool = True) -> float:
    """The accuracy (points) a run must reach to pass TensorRT-LLM's gate against reference ``ref``.

    Mirrors accuracy_core.compute_threshold: ref + Phi^-1(alpha) * sqrt(2 sigma^2 / n) when higher
    is better (ref - 1.817 at n = 4096, ref - 11.6 at n = 100), ref - Phi^-1(alpha) * scale otherwise.
    """
    _check_alpha(alpha)
    if n <= 0:
        raise HarnessError(f"trtllm_threshold needs n > 0 samples, got {n}")
    scale = math.sqrt(2 * sigma**2 / n)
    z = _norm_ppf(alpha)
    return ref + z * scale if higher_is_better else ref - z * scale


def trtllm_samples_needed(effect: float, sigma: float = 50.0, alpha: float = 0.05, beta: float = 0.2) -> int:
    """Smallest n at which trtllm_theta(n) <= effect (points): what the unpaired gate would need.

    Exact at the boundary: trtllm_samples_needed(trtllm_theta(4096)) is 4096 (the closed form
    2 sigma^2 z^2 / effect^2 lands a rounding error above the integer)."""
    if not effect or effect <= 0 or not math.isfinite(effect):
        return 0
    z = -(_norm_ppf(alpha) + _norm_ppf(beta))
    n = max(1, int(math.ceil(2 * sigma**2 * z * z / (effect * effect) * (1 - 1e-12))))
    while trtllm_theta(n, sigma, alpha, beta) > effect:
        n += 1
    while n > 1 and trtllm_theta(n - 1, sigma, alpha, beta) <= effect:
        n -= 1
    return n


# ---------------------------------------------------------------------------------------------
# Building blocks of the log-probability test


@dataclass
class Exceedance:
    """How many paired samples diverge beyond a tolerance, against the rate noise may produce.

    k of n samples have divergence > tolerance; H0: the per-sample exceedance probability is at
    most ``allowed_rate`` (what acceptable noise produces); p = P(Bin(n, allowed_rate) >= k).
    """

    k: int
    n: int
    tolerance: float
    allowed_rate: float
    p: float

    @property
    def rate(self) -> float:
        return self.k / self.n if self.n else float("nan")

    def to_dict(self) -> dict:
        return {**asdict(self), "rate": self.rate}


def exceedance_test(divergences: Sequence[float], tolerance: float, allowed_rate: float) -> Exceedance:
    """One-sided binomial test of #{d > tolerance} against ``allowed_rate`` (NaN counts as exceeding)."""
    from scipy.stats import binom

    if not (tolerance >= 0):
        raise HarnessError(f"divergence tolerance must be >= 0, got {tolerance!r}; pass e.g. --kl-tolerance 0.01")
    if not (0.0 <= allowed_rate < 1.0):
        raise HarnessError(f"allowed exceedance rate must be in [0, 1), got {allowed_rate!r}")
    n = len(divergences)
    k = sum(1 for d in divergences if not (d <= tolerance))  # NaN/inf -> exceeds
    if n == 0:
        return Exceedance(0, 0, tolerance, allowed_rate, 1.0)
    if allowed_rate == 0.0:
        p = 0.0 if k > 0 else 1.0
    else:
        p = float(binom.sf(k - 1, n, allowed_rate)) if k > 0 else 1.0
    return Exceedance(k, n, tolerance, allowed_rate, min(1.0, p))


@dataclass
class SignFlip:
    """Paired sign-flip (permutation) test of mean(deltas) = 0.

    Under H0 each paired difference is symmetric about 0, so flipping its sign is as likely as not.
    The test statistic is the *mean* (the log-loss of the reference answer is a proper scoring
    rule, so a lower mean log-prob of the right answer is a worse model, even when the median
    sample moves the other way). Exact enumeration for n <= 16, Monte Carlo otherwise.
    """

    n: int
    mean: float
    p_two_sided: float
    p_less: float  # H1: mean < 0
    p_greater: float  # H1: mean > 0
    n_perm: int  # 0 = exact

    def to_dict(self) -> dict:
        return asdict(self)


def sign_flip_test(deltas: Sequence[float], n_perm: int = 9999, seed: int = 0) -> SignFlip:
    """Sign-flip permutation test on the mean of paired differences (non-finite values dropped)."""
    import numpy as np

    d = np.asarray([x for x in deltas if x is not None and math.isfinite(x)], dtype=float)
    n = int(d.size)
    if n == 0 or not np.any(d != 0):
        return SignFlip(n, float(d.mean()) if n else float("nan"), 1.0, 1.0, 1.0, 0)
    obs = float(d.mean())
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))
    if n <= 16:
        signs = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) * 2 - 1
        means = (signs * d).mean(axis=1)
        total = means.size
        le = int((means <= obs + tol).sum())
        ge = int((means >= obs - tol).sum())
        two = int((np.abs(means) >= abs(obs) - tol).sum())
        used = 0
    else:
        rng = np.random.default_rng(seed)
        le = ge = two = 1  # the observed arrangement counts once (valid Monte Carlo p-value)
        total = n_perm + 1
        chunk = max(1, 1_000_000 // n)
        done = 0
        total_d = float(d.sum())
        while done < n_perm:
            m = min(chunk, n_perm - done)
            # a sign pattern as bits: sum(s * d) = 2 * sum(d where the bit is set) - sum(d); one
            # matrix product instead of an (m, n) array of signs (3x faster at n = 1000)
            bits = rng.integers(0, 2, size=(m, n), dtype=np.int8)
            means = (2.0 * (bits @ d) - total_d) / n
            le += int((means <= obs + tol).sum())
            ge += int((means >= obs - tol).sum())
            two += int((np.abs(means) >= abs(obs) - tol).sum())
            done += m
        used = n_perm
    return SignFlip(n, obs, min(1.0, two / total), min(1.0, le / total), min(1.0, ge / total), used)


def mann_whitney_greater(x: Sequence[float], y: Sequence[float]) -> float:
    """One-sided Mann-Whitney U p-value for 'x tends to be larger than y' (1.0 when undefined)."""
    xs = [v for v in x if v is not None and math.isfinite(v)]
    ys = [v for v in y if v is not None and math.isfinite(v)]
    if not xs or not ys:
        return 1.0
    from scipy.stats import mannwhitneyu

    try:
        return float(mannwhitneyu(xs, ys, alternative="greater").pvalue)
    except ValueError:
        return 1.0


# ---------------------------------------------------------------------------------------------
# Paired differences: estimates, one-sided tests and intervals for the verdict's evidence routes


@dataclass
class PairedDifference:
    """A paired mean difference (proportions) with one-sided p-values and an interval.

    ``lo``/``hi`` is the (1 - 2 * alpha) two-sided interval, i.e. each bound one-sided at
    ``alpha``: the interval of a TOST equivalence test at ``alpha`` and of a one-sided test at
    ``alpha`` in either direction. ``sd`` is the per-sample standard deviation (for sample sizes).
    """

    mean: float
    lo: float
    hi: float
    p_less: float  # H1: the true difference < 0
    p_greater: float  # H1: the true difference > 0
    sd: float
    n: int
    alpha: float
    method: str
    call_lo: float | None = None  # the interval that goes with p_less / p_greater, when lo/hi is another one
    call_hi: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def paired_t(deltas: Sequence[float], alpha: float = 0.05) -> PairedDifference:
    """Student-t inference on the mean of per-sample paired differences (bounded values such as the
    change of a probability, where the t approximation is good from a few dozen pairs). All-zero
    differences give the exact interval (0, 0) and p = 1 both ways."""
    import numpy as np
    from scipy.stats import t as student_t

    _check_alpha(alpha)
    d = np.asarray([x for x in deltas if x is not None and math.isfinite(x)], dtype=float)
    n = int(d.size)
    if n < 2:
        return PairedDifference(float(d.mean()) if n else float("nan"), -1.0, 1.0, 1.0, 1.0, float("nan"), n, alpha,
                                "paired t")
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0.0:
        p_less = 0.0 if mean < 0 else 1.0
        p_greater = 0.0 if mean > 0 else 1.0
        return PairedDifference(mean, mean, mean, p_less, p_greater, 0.0, n, alpha, "paired t")
    se = sd / math.sqrt(n)
    tstat = mean / se
    half = float(student_t.ppf(1 - alpha, n - 1)) * se
    return PairedDifference(mean, mean - half, mean + half, float(student_t.cdf(tstat, n - 1)),
                            float(student_t.sf(tstat, n - 1)), sd, n, alpha, "paired t")


LARGE_CHANGE = 0.25  # a per-sample change beyond this (probability units) is "large": noise rarely does it
TAIL_SHARE = 0.8  # of alpha, for the bound on large changes (the small-change t-interval is narrow anyway)
SIGN_FLIPS = 4000  # random sign flips of the expected-accuracy route's test (Monte Carlo error ~0.0025 at p 0.025)


def wilson_upper(k: int, n: int, alpha: float) -> float:
    """One-sided (1 - alpha) Wilson upper bound of a proportion k/n."""
    if n <= 0:
        return 1.0
    z = _norm_ppf(1 - alpha)
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + half) / (1 + z * z / n))


def tail_guarded_mean(deltas: Sequence[float], alpha: float = 0.05, large: float = LARGE_CHANGE) -> PairedDifference:
    """The mean of per-sample changes bounded in [-1, 1], with an interval that stays honest when a
    fault touches only a few samples.

    A fault confined to 2% of prompts is absent from a sample of 100 one time in eight, and then every
    observed change is small noise and a t-interval is narrow around zero: it would call a 1-2
    point loss "the same". So the interval splits the mean: the part from changes within +-``large``
    gets a t-interval, the part from larger changes is bounded by the Wilson upper bound of how often
    they occur times the largest possible change (1). The two parts split alpha (``TAIL_SHARE`` to
    the rare part), so each bound holds with probability >= 1 - alpha for any distribution of
    changes. The price is honesty about rare faults: with no large change observed, equivalence
    within +-1 point needs roughly 400-600 pairs, whatever the noise.
    The one-sided p-values (for calls) are a sign-flip permutation test of all changes (exact when
    the changes are symmetric about zero, as noise makes them; a t-test's p-value is too small at a
    few dozen skewed changes), the call interval the paired t-interval.
    """
    import numpy as np

    full = paired_t(deltas, alpha)
    flips = sign_flip_test(deltas, n_perm=SIGN_FLIPS)
    d = np.asarray([x for x in deltas if x is not None and math.isfinite(x)], dtype=float)
    n = int(d.size)
    if n < 2:
        return full
    small = paired_t(np.where(np.abs(d) <= large, d, 0.0).tolist(), alpha * (1 - TAIL_SHARE))
    lo = small.lo - wilson_upper(int((d < -large).sum()), n, alpha * TAIL_SHARE)
    hi = small.hi + wilson_upper(int((d > large).sum()), n, alpha * TAIL_SHARE)
    return PairedDifference(full.mean, max(-1.0, lo), min(1.0, hi), flips.p_less, flips.p_greater, full.sd, n, alpha,
                            "sign-flip test; tail-guarded interval", call_lo=full.lo, call_hi=full.hi)


def tail_guarded_pairs_needed(deltas: Sequence[float], margin: float, alpha: float = 0.05,
                              large: float = LARGE_CHANGE, limit: int = 1_000_000) -> int | None:
    """Pairs at which ``tail_guarded_mean``'s interval would fit inside +-margin, if the observed
    mean, spread and share of large changes held (None: not even at ``limit``)."""
    import numpy as np

    d = np.asarray([x for x in deltas if x is not None and math.isfinite(x)], dtype=float)
    if d.size < 2 or margin <= 0:
        return None
    small = np.where(np.abs(d) <= large, d, 0.0)
    mean, sd = float(small.mean()), float(small.std(ddof=1))
    share_neg, share_pos = float((d < -large).mean()), float((d > large).mean())

    def fits(m: int) -> bool:
        half = _norm_ppf(1 - alpha * (1 - TAIL_SHARE)) * sd / math.sqrt(m)
        return (mean - half - wilson_upper(round(share_neg * m), m, alpha * TAIL_SHARE) > -margin
                and mean + half + wilson_upper(round(share_pos * m), m, alpha * TAIL_SHARE) < margin)

    if not fits(limit):
        return None
    lo, hi = 2, limit
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(mid) else (mid + 1, hi)
    return lo


def _tango_z(b: int, c: int, n: int, delta: float) -> float:
    """Tango's score statistic for H0: p_c - p_b = delta (b: pairs the candidate lost, c: gained).

    The restricted maximum-likelihood estimate of p_b under H0 solves
    2n p^2 - [(b + c)(1 - delta) - 2 delta (b + r)] p - b delta (1 - delta) = 0 (r: concordant pairs),
    and Var(c - b) = n (2 p_b + delta - delta^2) (Tango 1998, Statistics in Medicine 17:891)."""
    r = n - b - c
    lin = (b + c) * (1 - delta) - 2 * delta * (b + r)
    disc = max(0.0, lin * lin + 8 * n * b * delta * (1 - delta))
    p_b = max(0.0, (lin + math.sqrt(disc)) / (4 * n))
    var = n * (2 * p_b + delta - delta * delta)
    if var <= 0:
        return math.copysign(math.inf, (c - b) - n * delta) if (c - b) != n * delta else 0.0
    return ((c - b) - n * delta) / math.sqrt(var)


def paired_proportion_difference(b: int, c: int, n: int, alpha: float = 0.05) -> PairedDifference:
    """Accuracy(candidate) - accuracy(reference) of paired binary outcomes: McNemar's exact test for
    the one-sided p-values, Tango's score interval for the bounds (each one-sided at ``alpha``).

    The score interval stays honest where a bootstrap or Wald interval collapses: with no
    discordant pair at all it is +-z^2 / (n + z^2) (about +-5.1 points at n = 50), not (0, 0)."""
    from scipy.optimize import brentq

    _check_alpha(alpha)
    if n <= 0 or b < 0 or c < 0 or b + c > n:
        raise HarnessError(f"paired counts need 0 <= b + c <= n, got b={b}, c={c}, n={n}")
    z = _norm_ppf(1 - alpha)
    eps = 1e-12
    lo = -1.0 if _tango_z(b, c, n, -1 + eps) <= z else brentq(lambda x: _tango_z(b, c, n, x) - z, -1 + eps, (c - b) / n)
    hi = 1.0 if _tango_z(b, c, n, 1 - eps) >= -z else brentq(lambda x: _tango_z(b, c, n, x) + z, (c - b) / n, 1 - eps)
    mc = mcnemar_exact(b, c)
    d = (c - b) / n
    sd = math.sqrt(max(0.0, (b + c) / n - d * d))
    return PairedDifference(d, float(lo), float(hi), mc.p_regressed, mc.p_improved, sd, n, alpha,
                            "McNemar exact + Tango score interval")


def samples_for_equivalence(sd: float, estimate: float, margin: float, alpha: float = 0.05,
                            power: float = 0.8) -> int | None:
    """Pairs a TOST at ``alpha`` needs to show |difference| < margin with ``power`` when the true
    difference is ``estimate`` and the per-pair standard deviation ``sd`` (normal approximation).
    None when |estimate| >= margin (equivalence cannot be shown)."""
    if not (math.isfinite(sd) and math.isfinite(estimate)) or abs(estimate) >= margin:
        return None
    z = _norm_ppf(1 - alpha) + _norm_ppf(power)
    return max(2, int(math.ceil((z * max(sd, 1e-9) / (margin - abs(estimate))) ** 2)))


def samples_for_difference(sd: float, estimate: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Pairs a one-sided test at ``alpha`` needs to detect a true difference ``estimate`` with
    ``power`` (normal approximation); None for a zero estimate."""
    if not (math.isfinite(sd) and math.isfinite(estimate)) or estimate == 0:
        return None
    z = _norm_ppf(1 - alpha) + _norm_ppf(power)
    return max(2, int(math.ceil((z * max(sd, 1e-9) / abs(estimate)) ** 2)))


def benjamini_hochberg(p_values: Sequence[float | None]) -> list[float | None]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order; None stays None.
    A hypothesis is rejected at false-discovery rate q when its adjusted p-value is <= q."""
    idx = [i for i, p in enumerate(p_values) if p is not None and math.isfinite(p)]
    m = len(idx)
    out: list[float | None] = [None if p is None or not math.isfinite(p) else p for p in p_values]
    order = sorted(idx, key=lambda i: p_values[i])
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p_values[i] * m / rank)
        out[i] = min(1.0, running)
    return out
