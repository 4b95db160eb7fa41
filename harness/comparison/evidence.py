"""The evidence a verdict rests on: per-route paired differences, plus divergence diagnostics.

An *evidence route* is one paired quantity the user cares about, measured on the same prompts in
both runs (docs/method.md, "Statistics"):

* ``expected_accuracy`` - the change of the right answer's probability, renormalised over the
  answer letters, per sample: its mean is the change of the expected accuracy, in accuracy's own
  units. Cross-engine noise moves it a little on every sample, unbiased, so its paired interval is
  narrow where accuracy's is wide. The primary route whenever both runs carry answer-letter
  log-probabilities (multiple-choice tasks).
* ``accuracy`` - the change of accuracy itself (McNemar's exact test, Tango's score interval).
  The primary route for generation tasks (GSM8K), which have no letter distribution.

Each route makes its own call: ``regressed`` / ``improved`` when its one-sided test is significant
at the route's share of alpha (Bonferroni over the routes that run) AND its estimate is at least
``min_effect`` points (and beyond the A/A floor when one was measured): a change too small to
matter is not a regression. It shows *equivalence* when its two one-sided tests (TOST) at alpha put
the whole (1 - 2 alpha) interval inside +-``min_effect``. Otherwise it reports how many pairs would
decide it, from the variance it observed.

The divergence diagnostics (KL beyond a tolerance, top-1 agreement, flips) say *that* two runs
differ, not that one is worse: they feed the report and the Phase 2 classifier, never the verdict.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from harness.comparison import stats
from harness.comparison.logprobs import SampleDivergence, divergences_for_test

ROUTE_LABELS = {"expected_accuracy": "expected accuracy", "accuracy": "accuracy"}
TRTLLM_ALPHA = 0.05  # the alpha TensorRT-LLM's accuracy gate uses


@dataclass
class RouteSettings:
    """What a route is judged against: alpha for a call (this route's share), alpha for the
    equivalence test, the practical margin (points), the A/A floor (points) and the power used to
    size an undecided comparison."""

    alpha_call: float
    alpha_equivalence: float
    min_effect: float
    floor: float | None = None
    power: float = 0.8


@dataclass
class Route:
    """One evidence route: the paired difference, the call it makes and whether it shows equivalence."""

    name: str
    difference: stats.PairedDifference  # proportions
    settings: RouteSettings
    call: str | None = None  # "regressed" | "improved"
    equivalent: bool = False
    n_needed: int | None = None  # pairs that would decide it (None: decided, or cannot be sized)
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return ROUTE_LABELS.get(self.name, self.name)

    @property
    def estimate(self) -> float:
        return 100 * self.difference.mean

    @property
    def interval(self) -> tuple[float, float]:
        """The equivalence interval (points)."""
        return 100 * self.difference.lo, 100 * self.difference.hi

    @property
    def call_interval(self) -> tuple[float, float]:
        """The interval that goes with the one-sided tests of a call (points)."""
        d = self.difference
        if d.call_lo is None:
            return self.interval
        return 100 * d.call_lo, 100 * d.call_hi

    def to_dict(self) -> dict:
        lo, hi = self.interval
        return {"route": self.name, "estimate_points": self.estimate, "interval_points": [lo, hi],
                "call_interval_points": list(self.call_interval),
                "interval_level": 1 - 2 * self.settings.alpha_equivalence, "p_worse": self.difference.p_less,
                "p_better": self.difference.p_greater, "sd_points": 100 * self.difference.sd, "n": self.difference.n,
                "method": self.difference.method, "alpha_call": self.settings.alpha_call,
                "alpha_equivalence": self.settings.alpha_equivalence, "min_effect": self.settings.min_effect,
                "floor_points": self.settings.floor, "call": self.call, "equivalent": self.equivalent,
                "n_needed": self.n_needed, "notes": list(self.notes)}


def judge_route(name: str, difference: stats.PairedDifference, settings: RouteSettings,
                equivalence_pairs: Callable[[float, float], int | None] | None = None) -> Route:
    """The call, equivalence and sample size of one route (see the module docstring).
    ``equivalence_pairs(margin, alpha)`` sizes an equivalence test the way the route's interval is
    built (default: the normal approximation)."""
    route = Route(name, difference, settings)
    estimate, margin = route.estimate, settings.min_effect
    lo, hi = route.interval
    worse = difference.p_less < settings.alpha_call and estimate < 0
    better = difference.p_greater < settings.alpha_call and estimate > 0
    if worse or better:
        if abs(estimate) < margin:
            route.notes.append(f"{route.label} moved {estimate:+.2f} points, significant but below the minimum "
                               f"effect of {margin:g}")
        elif settings.floor is not None and abs(estimate) <= settings.floor:
            route.notes.append(f"{route.label} moved {estimate:+.2f} points, within the A/A noise floor "
                               f"(+-{settings.floor:.2f})")
        else:
            route.call = "regressed" if worse else "improved"
    # bit-identical runs give the exact interval (0, 0): equivalent even at a zero margin
    route.equivalent = route.call is None and ((lo > -margin and hi < margin) or lo == hi == 0)
    if route.call is None and not route.equivalent:
        route.n_needed = _pairs_needed(route, equivalence_pairs)
    return route


def _pairs_needed(route: Route, equivalence_pairs) -> int | None:
    """Pairs at which this route would decide, assuming the observed estimate and spread hold."""
    settings, diff = route.settings, route.difference
    margin = settings.min_effect / 100
    if abs(diff.mean) >= margin:
        return stats.samples_for_difference(diff.sd, diff.mean, settings.alpha_call, settings.power)
    if equivalence_pairs is not None:
        return equivalence_pairs(margin, settings.alpha_equivalence)
    if route.name == "accuracy" and diff.sd == 0:  # no discordant pair yet: the score bound z^2 / (n + z^2)
        z = stats._norm_ppf(1 - settings.alpha_equivalence)
        return int(z * z * (1 - margin) / margin) + 1 if margin > 0 else None
    return stats.samples_for_equivalence(diff.sd, diff.mean, margin, settings.alpha_equivalence, settings.power)


# ---------------------------------------------------------------------------------------------
# The two routes


def accuracy_difference(pairs: list[tuple[dict, dict]], alpha: float) -> stats.PairedDifference:
    """Paired accuracy change: McNemar's exact one-sided p-values, Tango's score interval."""
    ref_correct = [bool(ref.get("correct")) for ref, _ in pairs]
    cand_correct = [bool(cand.get("correct")) for _, cand in pairs]
    losses, gains = stats.discordant_counts(ref_correct, cand_correct)
    return stats.paired_proportion_difference(losses, gains, len(pairs), alpha)


def gold_probability_changes(divergences: list[SampleDivergence]) -> list[float]:
    """Per sample, the change of the right answer's renormalised probability (where both runs scored it)."""
    return [d.delta_gold_prob for d in divergences if d.usable and d.delta_gold_prob is not None]


def expected_accuracy_difference(changes: list[float], alpha: float) -> stats.PairedDifference:
    """Mean change of the right answer's probability: paired t for calls, the tail-guarded interval
    (stats.tail_guarded_mean) for equivalence, so a fault on a few prompts the sample missed is
    not called "the same"."""
    return stats.tail_guarded_mean(changes, alpha)


def expected_accuracy_available(changes: list[float], n: int) -> bool:
    """The route runs when at least half of the n pairs carry the right answer's probability on both sides."""
    return len(changes) > 0 and len(changes) >= 0.5 * n


# ---------------------------------------------------------------------------------------------
# Diagnostics (never the verdict)


@dataclass
class Divergence:
    """Share of samples whose letter KL exceeds a tolerance, against the rate noise may produce."""

    exceedance: stats.Exceedance
    tolerance_source: str
    alpha: float

    @property
    def differs(self) -> bool:
        return self.exceedance.p < self.alpha

    def to_dict(self) -> dict:
        return {"available": True, **self.exceedance.to_dict(), "tolerance_source": self.tolerance_source,
                "divergent": self.differs, "alpha": self.alpha, "decides_verdict": False}


def divergence_diagnostic(divergences: list[SampleDivergence], tolerance: float, tolerance_source: str,
                          allowed_rate: float, alpha: float) -> Divergence | None:
    """The KL-exceedance test as a diagnostic; None without enough log-probs."""
    kl_values = divergences_for_test(divergences)
    if not kl_values:
        return None
    return Divergence(stats.exceedance_test(kl_values, tolerance, allowed_rate), tolerance_source, alpha)


def trtllm_gate(n: int, ref_points: float, cand_points: float, sigma: float, beta: float) -> dict:
    """TensorRT-LLM's unpaired accuracy gate at the same n (reported beside the verdict, not part of it)."""
    diff = cand_points - ref_points
    threshold = stats.trtllm_threshold(n, ref_points, sigma, TRTLLM_ALPHA)
    return {"n": n, "alpha": TRTLLM_ALPHA, "beta": beta, "sigma": sigma,
            "theta": stats.trtllm_theta(n, sigma, TRTLLM_ALPHA, beta), "threshold": threshold,
            "threshold_offset": threshold - ref_points, "passes": cand_points >= threshold,
            "theta_4096": stats.trtllm_theta(4096, sigma, TRTLLM_ALPHA, beta), "observed_effect": diff,
            "n_needed": stats.trtllm_samples_needed(abs(diff), sigma, TRTLLM_ALPHA, beta) if diff else None,
            "source": "tests/integration/defs/accuracy/accuracy_core.py compute_theta/compute_threshold"}
