"""Verdict of a paired comparison: same | regressed | improved | inconclusive | unresolved.

``compare_runs(ref_records, cand_records, ...)`` pairs the two runs (harness/comparison/pairing.py:
same id, same prompt text, same prompt token ids; different prompts raise PairingError), measures
the evidence routes of harness/comparison/evidence.py on the pairs and combines them. Every number
behind the verdict is kept. The rules (docs/method.md, "Statistics"):

* The **primary evidence** is the paired change in *expected* accuracy (mean change of the right
  answer's renormalised probability) when both runs carry answer-letter log-probabilities, else
  accuracy itself (generation tasks). Accuracy is a second route when both exist.
* ``regressed`` / ``improved``: a route's one-sided test is significant at alpha / (number of
  routes) AND the estimate is at least ``min_effect`` points on EVERY route, in the same direction
  (and beyond the A/A floor, when one was measured). A change too small to matter is not a
  regression, however significant; nor is one that a single noisy route shows and the other does
  not (then the verdict is inconclusive and says which route fell short).
* ``same``: an equivalence claim, not "nothing was significant": the primary route's (1 - 2 alpha)
  interval lies inside +-``min_effect`` (two one-sided tests at alpha, so the chance of calling a
  true change of min_effect or more "same" is at most alpha), no route makes a call, and no other
  route shows a possible loss of 2 x ``min_effect``: its interval's lower end lies above
  -2 x ``min_effect`` (so accuracy cannot lose points while the expected accuracy stays put, as when
  a model's near ties flip). The guard is one-sided: a gain the primary route does not share is not a
  loss, even a significant one (then that route calls "improved", the primary does not back it, and the
  verdict is still "same", naming the gain), and the verdict says so in words instead of staying
  undecided (on the demo's clean config under engine noise, accuracy up 1.2-1.3 points from near-tie
  flips kept 2 of 20 bisects inconclusive at the data set's limit while expected accuracy was
  equivalent, one of them with the gain significant: p 0.014 at n = 1050).
* Two routes calling opposite directions: ``inconclusive``, and the reasons say so. A call whose
  other route points the other way says that too.
* Otherwise ``inconclusive``, with ``n_needed``: the sample count at which the observed variance
  would decide it (the bisect escalates to it, capped by the data set).
* ``unresolved``: a run crashed, hung or is empty.

Divergence measures (KL beyond a tolerance, JS, flips, top-1 agreement) stay in the comparison as
diagnostics (``differs``, ``logprob_test``) and for the Phase 2 classifier; they never decide the
verdict: two engines never agree bit for bit, so "different" is not "worse".

Beside all this the comparison reports TensorRT-LLM's *unpaired* gate at the same n
(accuracy_core.py: threshold and minimum detectable effect theta, alpha 0.05, beta 0.2, sigma 50)
so users see why that gate needs 4096 samples.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from harness.comparison import stats
from harness.comparison.evidence import (
    Divergence, Route, RouteSettings, accuracy_difference, divergence_diagnostic, expected_accuracy_available,
    expected_accuracy_difference, gold_probability_changes, judge_route, trtllm_gate,
)
from harness.comparison.logprobs import NEAR_TIE_MARGIN, SampleDivergence, compare_logprobs
from harness.comparison.noise import NoiseFloor
from harness.comparison.pairing import Pairing, PairingError, pair_records
from harness.errors import HarnessError

VERDICTS = ("same", "regressed", "improved", "inconclusive", "unresolved")
DIRECTIONS = ("regressed", "improved")
DEFAULT_ALPHA = 0.05
DEFAULT_MIN_EFFECT = 1.0  # accuracy points
DEFAULT_KL_TOLERANCE = 0.01  # nats per sample, letter distribution (a diagnostic threshold)
DEFAULT_KL_EXCEED_RATE = 0.05  # share of samples acceptable noise may push above the tolerance
DEFAULT_POWER = 0.8  # power assumed when sizing an undecided comparison
SECONDARY_MARGIN = 2.0  # a "same" also needs every other route's interval above -this x min_effect


@dataclass(frozen=True)
class VerdictOptions:
    """The settings of a comparison; the defaults are the harness's (see the module docstring)."""

    alpha: float = DEFAULT_ALPHA  # error rate of a call (split over the routes) and of a "same" claim
    call_alpha: float | None = None  # error rate of a call alone when it differs (a search's per-decision alpha)
    min_effect: float = DEFAULT_MIN_EFFECT  # accuracy points: smallest change called, equivalence margin
    kl_tolerance: float = DEFAULT_KL_TOLERANCE  # diagnostic: per-sample letter KL (nats) noise may reach
    kl_tolerance_source: str = "the default 0.01 nats"  # where the tolerance came from (e.g. a calibration)
    kl_exceed_rate: float = DEFAULT_KL_EXCEED_RATE  # diagnostic: share of samples noise may push beyond it
    near_tie_margin: float = NEAR_TIE_MARGIN  # reference top1-top2 margin (nats) of a near-tie flip
    power: float = DEFAULT_POWER  # power assumed when sizing an undecided comparison (n_needed)
    trtllm_sigma: float = 50.0  # sigma of TensorRT-LLM's unpaired gate
    trtllm_beta: float = 0.2  # beta of TensorRT-LLM's unpaired gate
    on_invalid: str = "raise"  # prompts differ: "raise" (PairingError) or "unresolved"

    def validate(self) -> None:
        """HarnessError naming the first setting out of range."""
        stats._check_alpha(self.alpha)
        if self.call_alpha is not None:
            stats._check_alpha(self.call_alpha, "call_alpha")
        stats._check_alpha(self.power, "power")
        if self.min_effect < 0 or not math.isfinite(self.min_effect):
            raise HarnessError(f"min_effect must be a non-negative number of accuracy points, got {self.min_effect!r}")
        tolerance = self.kl_tolerance
        if not (isinstance(tolerance, (int, float)) and tolerance >= 0 and math.isfinite(tolerance)):
            raise HarnessError(f"kl_tolerance must be a non-negative number of nats, got {tolerance!r}; pass e.g. "
                               f"--kl-tolerance {DEFAULT_KL_TOLERANCE}")
        if not (isinstance(self.kl_exceed_rate, (int, float)) and 0 <= self.kl_exceed_rate < 1):
            raise HarnessError(f"kl_exceed_rate must be in [0, 1), got {self.kl_exceed_rate!r}; pass e.g. "
                               f"--kl-exceed-rate {DEFAULT_KL_EXCEED_RATE}")
        if self.on_invalid not in ("raise", "unresolved"):
            raise HarnessError(f"on_invalid must be 'raise' or 'unresolved', got {self.on_invalid!r}")

    def params(self) -> dict:
        """The settings a Comparison reports under ``params``."""
        return {"alpha": self.alpha, "call_alpha": self.call_alpha, "min_effect": self.min_effect, "kl_tolerance": self.kl_tolerance,
                "kl_tolerance_source": self.kl_tolerance_source, "kl_exceed_rate": self.kl_exceed_rate,
                "near_tie_margin": self.near_tie_margin, "power": self.power}


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def json_safe(obj):
    """Replace NaN/inf by None (or +-"inf") recursively so json.dumps(strict) works."""
    if isinstance(obj, float):
        if math.isnan(obj):
            return None
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "to_dict"):
        return json_safe(obj.to_dict())
    return obj


# ---------------------------------------------------------------------------------------------
# The comparison


@dataclass
class Comparison:
    verdict: str
    reasons: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)  # the routes whose call the verdict is
    differs: bool = False  # diagnostic: more samples diverge beyond the KL tolerance than noise would give
    n: int = 0
    labels: dict = field(default_factory=dict)
    pairing: dict = field(default_factory=dict)
    primary: str | None = None  # the route a "same" rests on ("expected_accuracy" | "accuracy")
    routes: dict = field(default_factory=dict)  # route name -> Route.to_dict()
    n_needed: int | None = None  # inconclusive: samples at which the observed variance would decide it
    accuracy: dict = field(default_factory=dict)
    expected_accuracy: dict = field(default_factory=dict)
    mcnemar: dict = field(default_factory=dict)
    trtllm: dict = field(default_factory=dict)
    logprob: dict = field(default_factory=dict)
    logprob_test: dict = field(default_factory=dict)  # the KL-exceedance diagnostic
    generation: dict = field(default_factory=dict)
    noise: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    flips: list[dict] = field(default_factory=list)  # examples of discordant / flipped samples (largest KL first)
    flips_total: int = 0  # how many samples are discordant or flipped (flips holds at most 20)
    per_sample: list[SampleDivergence] = field(default_factory=list)

    FIELDS = ("verdict", "reasons", "evidence", "differs", "n", "labels", "pairing", "primary", "routes", "n_needed",
              "accuracy", "expected_accuracy", "mcnemar", "trtllm", "logprob", "logprob_test", "generation", "noise",
              "params", "flips", "flips_total")

    def to_dict(self, per_sample: bool = False) -> dict:
        d = {k: getattr(self, k) for k in self.FIELDS}
        if per_sample:
            d["per_sample"] = [vars(s) for s in self.per_sample]
        return json_safe(d)

    # -- human text: one helper per block ------------------------------------------------------
    def summary_lines(self) -> list[str]:
        lines = self._verdict_lines()
        if self.verdict == "unresolved" and not self.accuracy:
            return lines
        for block in (self._pairing_lines, self._accuracy_lines, self._expected_accuracy_lines, self._logprob_lines,
                      self._generation_lines, self._noise_lines, self._trtllm_lines):
            lines += block()
        return lines

    def _verdict_lines(self) -> list[str]:
        evidence = f" (evidence: {', '.join(self.evidence)})" if self.evidence else ""
        needed = f" - about {self.n_needed:,} samples would decide it" \
            if self.verdict == "inconclusive" and self.n_needed else ""
        return [f"verdict: {self.verdict.upper()}{evidence}{needed}"] + \
            [f"  because: {reason}" for reason in self.reasons]

    def _pairing_lines(self) -> list[str]:
        labels, pairing = self.labels, self.pairing
        return [f"paired samples: {self.n} (reference {labels.get('ref', 'A')!r} vs candidate "
                f"{labels.get('cand', 'B')!r}); prompt text checked on all, prompt token ids on "
                f"{pairing.get('token_checked', 0)}"] + [f"  ! {problem}" for problem in pairing.get("problems", [])]

    def _accuracy_lines(self) -> list[str]:
        accuracy = self.accuracy
        if not accuracy:
            return []
        mcnemar, route = self.mcnemar, self.routes.get("accuracy") or {}
        ref_ci, cand_ci = accuracy["ref_ci"], accuracy["cand_ci"]
        return [
            f"accuracy: reference {accuracy['ref_points']:.1f}% [{ref_ci[0]:.1f}, {ref_ci[1]:.1f}]  "
            f"candidate {accuracy['cand_points']:.1f}% [{cand_ci[0]:.1f}, {cand_ci[1]:.1f}]  (Wilson 95%)",
            f"difference: {accuracy['diff_points']:+.1f} points{_route_interval(route)}",
            f"McNemar exact: b={mcnemar['b']} (reference right, candidate wrong), c={mcnemar['c']} (reverse); "
            f"p two-sided {_p(mcnemar['p_two_sided'])}, one-sided worse {_p(mcnemar['p_regressed'])}, better "
            f"{_p(mcnemar['p_improved'])}{_route_call(route)}"]

    def _expected_accuracy_lines(self) -> list[str]:
        route = self.routes.get("expected_accuracy")
        if not route:
            return []
        return [f"expected accuracy (right answer's probability): {route['estimate_points']:+.2f} points"
                f"{_route_interval(route)}, paired t p worse {_p(route['p_worse'])} / better {_p(route['p_better'])}"
                f"{_route_call(route)}"]

    def _logprob_lines(self) -> list[str]:
        logprob = self.logprob
        if not logprob or logprob.get("n_scored", 0) + logprob.get("n_nonfinite_cand", 0) \
                + logprob.get("n_nonfinite_ref", 0) <= 0:
            return []
        nonfinite = logprob["n_nonfinite_ref"] + logprob["n_nonfinite_cand"] + logprob["n_nonfinite_both"]
        lines = [f"log-probs (answer letters, renormalised; diagnostics): {logprob['n_scored']} scored, "
                 f"{logprob['n_missing']} missing, {nonfinite} non-finite (ref {logprob['n_nonfinite_ref']}, "
                 f"cand {logprob['n_nonfinite_cand']}, both {logprob['n_nonfinite_both']})"]
        if logprob.get("kl_mean") is not None:
            lines += [
                f"  KL(ref||cand) mean {_g(logprob['kl_mean'])}, median {_g(logprob['kl_median'])}, "
                f"p95 {_g(logprob['kl_p95'])}, max {_g(logprob['kl_max'])}; JS mean {_g(logprob['js_mean'])}; "
                f"top-1 agreement {100 * logprob['top1_agreement']:.1f}%",
                f"  flips: {logprob['flips']} ({logprob['near_tie_flips']} near-tie with reference margin < "
                f"{logprob['near_tie_margin']:g} nats, {logprob['confident_flips']} confident); mean log-prob "
                f"change of the right answer {_g(logprob['delta_gold_mean'])} nats"]
        test = self.logprob_test
        if test.get("available"):
            lines.append(f"  divergence: {test['k']}/{test['n']} samples with KL > {_g(test['tolerance'])} nats "
                         f"(tolerance: {test['tolerance_source']}), noise may give {100 * test['allowed_rate']:.0f}% "
                         f"-> p = {_p(test['p'])}: {'differs' if test['divergent'] else 'within tolerance'} "
                         f"(a diagnostic: it does not decide the verdict)")
        return lines

    def _generation_lines(self) -> list[str]:
        generation = self.generation
        if not (generation.get("n_diverged") and generation.get("is_generation")):
            return []
        return [f"generation: {generation['n_diverged']}/{generation['n_compared']} outputs diverge; first divergent "
                f"token at position 0 (prefill) in {generation['n_prefill']}, later (decode / KV-cache path) in "
                f"{generation['n_decode']}; median position {_g(generation['first_divergence_median'])}"]

    def _noise_lines(self) -> list[str]:
        if not self.noise:
            return []
        noise = self.noise
        return [f"A/A noise floor: {noise.get('n_runs')} repeats; accuracy floor +-{_g(noise.get('acc_floor_points'))} "
                f"points, expected-accuracy floor +-{_g(noise.get('ea_floor_points'))} points; A/A KL p95 "
                f"{_g(noise.get('kl_p95'))}"]

    def _trtllm_lines(self) -> list[str]:
        gate = self.trtllm
        if not gate:
            return []
        need = f"; this {abs(gate['observed_effect']):.1f}-point effect would need n >= {gate['n_needed']:,}" \
            if gate.get("n_needed") else ""
        return [f"TensorRT-LLM unpaired gate at n={self.n}: threshold {gate['threshold']:.1f} "
                f"(reference {gate['threshold_offset']:+.1f}) -> candidate {'passes' if gate['passes'] else 'FAILS'}; "
                f"minimum detectable effect {gate['theta']:.1f} points (alpha {gate['alpha']:g}, beta "
                f"{gate['beta']:g}, sigma {gate['sigma']:g}; n=4096 gives {gate['theta_4096']:.2f}){need}"]

    def __str__(self) -> str:
        return "\n".join(self.summary_lines())


def _route_interval(route: dict) -> str:
    if not route:
        return ""
    lo, hi = route["interval_points"]
    return f", {100 * route['interval_level']:.0f}% interval [{lo:+.2f}, {hi:+.2f}] ({route['method']})"


def _route_call(route: dict) -> str:
    if not route:
        return ""
    if route.get("call"):
        return f" -> {route['call']} (alpha {route['alpha_call']:g}, min effect {route['min_effect']:g})"
    if route.get("equivalent"):
        return f" -> within +-{route['min_effect']:g} points (equivalent at alpha {route['alpha_equivalence']:g})"
    return " -> undecided"


def _p(p) -> str:
    if p is None:
        return "-"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def _g(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return f"{x:.3g}"


# ---------------------------------------------------------------------------------------------
# Reading the runs


def _unpack(run) -> tuple[list[dict] | None, str | None, str | None]:
    """records, status, error from a list of records, an EvalResult-like object or a dict."""
    if run is None:
        return None, "unresolved", "no run"
    if isinstance(run, list):
        return run, None, None
    if isinstance(run, dict):
        return run.get("records") or [], run.get("status"), run.get("error")
    if hasattr(run, "records"):
        return list(run.records or []), getattr(run, "status", None), getattr(run, "error", None)
    raise HarnessError(f"cannot compare a {type(run).__name__}; pass a list of records or an EvalResult")


def _read_runs(ref_run, cand_run, ref_status: str | None, cand_status: str | None):
    """(reference records, candidate records, the reasons the comparison is unresolved - empty if none)."""
    ref_records, ref_run_status, ref_error = _unpack(ref_run)
    cand_records, cand_run_status, cand_error = _unpack(cand_run)
    reasons = []
    for name, status, error, records in (("reference", ref_status or ref_run_status or "ok", ref_error, ref_records),
                                         ("candidate", cand_status or cand_run_status or "ok", cand_error,
                                          cand_records)):
        if status != "ok":
            reasons.append(f"the {name} run is {status}" + (f": {error}" if error else ""))
        elif not records:
            reasons.append(f"the {name} run has no records")
    return ref_records, cand_records, reasons


# ---------------------------------------------------------------------------------------------
# Combining the routes


@dataclass
class Decision:
    verdict: str
    reasons: list[str]
    evidence: list[str]  # the routes whose call the verdict is
    n_needed: int | None = None


def combine(routes: list[Route], primary: Route) -> Decision:
    """The verdict from the evidence routes (see the module docstring)."""
    calls = {route.call for route in routes if route.call}
    notes = [note for route in routes for note in route.notes]
    if len(calls) == 2:
        said = "; ".join(f"{route.label} says {route.call} ({route.estimate:+.2f} points)" for route in routes)
        return Decision("inconclusive", [f"the evidence disagrees in direction: {said}"] + notes, [])
    if calls:
        verdict = calls.pop()
        callers = [route for route in routes if route.call == verdict]
        short = [route for route in routes if not _reaches(route, verdict)]
        if short:
            if _gain_beside_equivalence(routes, primary, verdict, callers):
                return Decision("same", [_same_reason(primary)] + [_gain_words(route, primary) for route in callers]
                                + notes, [])
            return Decision("inconclusive", [_call_reason(route) for route in callers] + [_short_words(route, verdict)
                            for route in short] + notes, [], n_needed=_deciding_pairs(routes, primary))
        return Decision(verdict, [_call_reason(route) for route in callers] + notes, [route.name for route in callers])
    if primary.equivalent:
        loose = [route for route in routes if route is not primary and not _within_loose_margin(route)]
        if loose:
            return Decision("inconclusive", [_same_reason(primary)] + [_loose_words(route) for route in loose] + notes,
                            [], n_needed=max((_loose_pairs(route) or 0) for route in loose) or None)
        return Decision("same", [_same_reason(primary)] + _unsettled_words(routes, primary) + notes, [])
    return Decision("inconclusive", [_undecided_reason(primary)] + _disagreement_words(routes) + notes, [],
                    n_needed=_deciding_pairs(routes, primary))


def _gain_beside_equivalence(routes: list[Route], primary: Route, verdict: str, callers: list[Route]) -> bool:
    """A secondary route calls "improved" while the primary route shows equivalence: the candidate is not
    worse on either (the caller's interval lies above zero, the primary's inside +-min_effect), so "same"
    stands on the primary route and the gain is named. The mirror image, a secondary route calling
    "regressed", never is: a possible loss holds "same" back."""
    return (verdict == "improved" and primary.equivalent and primary not in callers
            and all(_within_loose_margin(route) for route in routes if route is not primary))


def _gain_words(route: Route, primary: Route) -> str:
    lo, hi = route.call_interval
    return (f"{route.label} rose {route.estimate:+.2f} points [{lo:+.2f}, {hi:+.2f}] (significant) while "
            f"{primary.label} moved {primary.estimate:+.2f}: a gain the primary quantity does not share (as when near "
            f"ties tip toward the right answer), not a loss")


def _deciding_pairs(routes: list[Route], primary: Route) -> int | None:
    """The smallest sample count at which the verdict would be decided: the primary route's
    equivalence, or a call by any route whose estimate is at least the minimum effect."""
    counts = [primary.n_needed] + [route.n_needed for route in routes
                                   if abs(route.estimate) >= route.settings.min_effect]
    counts = [c for c in counts if c]
    return min(counts) if counts else None


def _call_reason(route: Route) -> str:
    lo, hi = route.call_interval
    p = route.difference.p_less if route.call == "regressed" else route.difference.p_greater
    return (f"{route.label} {route.estimate:+.2f} points [{lo:+.2f}, {hi:+.2f}], one-sided p {_p(p)} < "
            f"{route.settings.alpha_call:g}, at least the minimum effect of {route.settings.min_effect:g}")


def _same_reason(route: Route) -> str:
    lo, hi = route.interval
    level = 100 * (1 - 2 * route.settings.alpha_equivalence)
    return (f"{route.label} {route.estimate:+.2f} points, {level:.0f}% interval [{lo:+.2f}, {hi:+.2f}] inside "
            f"+-{route.settings.min_effect:g} (equivalence test; a true change of {route.settings.min_effect:g} "
            f"points or more is called the same at most {100 * route.settings.alpha_equivalence:g}% of the time)")


def _undecided_reason(route: Route) -> str:
    lo, hi = route.interval
    margin = route.settings.min_effect
    return (f"{route.label} {route.estimate:+.2f} points, interval [{lo:+.2f}, {hi:+.2f}]: neither a change of "
            f"at least {margin:g} points nor equivalence within +-{margin:g} is shown at n={route.difference.n}")


def _reaches(route: Route, verdict: str) -> bool:
    """The route's estimate is at least the minimum effect in the verdict's direction."""
    sign = -1 if verdict == "regressed" else 1
    return route.estimate * sign >= route.settings.min_effect


def _short_words(route: Route, verdict: str) -> str:
    """Why a route that falls short of the minimum effect blocks the call."""
    sign = -1 if verdict == "regressed" else 1
    if route.estimate * sign < 0:
        return f"but {route.label} moved the other way ({route.estimate:+.2f} points): the routes disagree in direction"
    return (f"but {route.label} moved only {route.estimate:+.2f} points, less than the minimum effect of "
            f"{route.settings.min_effect:g}: not called {verdict} until every route shows it")


def _within_loose_margin(route: Route) -> bool:
    """A secondary route must not contradict a "same" by a possible loss: its interval's lower end above
    -SECONDARY_MARGIN x min_effect. (The demo model flips near ties: accuracy can lose 1.5 points while
    expected accuracy does not move.)"""
    lo, _ = route.interval
    return lo > -SECONDARY_MARGIN * route.settings.min_effect


def _loose_words(route: Route) -> str:
    lo, hi = route.interval
    margin = SECONDARY_MARGIN * route.settings.min_effect
    return (f"but {route.label} {route.estimate:+.2f} points, interval [{lo:+.2f}, {hi:+.2f}], may still hide a "
            f"loss of {margin:g} points or more: not called the same until its lower end is above -{margin:g}")


def _loose_pairs(route: Route) -> int | None:
    """Pairs at which the secondary route's interval would end above -SECONDARY_MARGIN x min_effect (a
    one-sided test of 'no loss of that size': the pairs to detect a difference of estimate + margin)."""
    diff, settings = route.difference, route.settings
    margin = SECONDARY_MARGIN * settings.min_effect / 100
    if diff.sd == 0:  # no discordant pair yet: the score bound z^2 / (n + z^2)
        z = stats._norm_ppf(1 - settings.alpha_equivalence)
        return int(z * z * (1 - margin) / margin) + 1
    if diff.mean + margin <= 0:
        return None
    return stats.samples_for_difference(diff.sd, diff.mean + margin, settings.alpha_equivalence, settings.power)


def _unsettled_words(routes: list[Route], primary: Route) -> list[str]:
    """A "same" whose secondary route moved by the minimum effect or more (without significance) says so."""
    return [f"{route.label} {route.estimate:+.2f} points, not significant at this n" for route in routes
            if route is not primary and abs(route.estimate) >= route.settings.min_effect] + \
        _disagreement_words(routes)


def _disagreement_words(routes: list[Route]) -> list[str]:
    """Accuracy and expected accuracy pointing in opposite directions, by a visible amount."""
    if len(routes) < 2:
        return []
    a, b = routes[0], routes[1]
    margin = max(a.settings.min_effect, b.settings.min_effect) / 2
    if a.estimate * b.estimate < 0 and max(abs(a.estimate), abs(b.estimate)) >= margin:
        return [f"{a.label} ({a.estimate:+.2f} points) and {b.label} ({b.estimate:+.2f} points) disagree in "
                f"direction"]
    return []


# ---------------------------------------------------------------------------------------------
# Examples and generation detail


def _flip_examples(divergences: list[SampleDivergence], pairs: list[tuple[dict, dict]],
                   near_tie_margin: float) -> list[dict]:
    """Every discordant or top-1-flipped sample, largest KL first (non-finite KL before all, missing last)."""
    flips = [{"id": d.id, "subject": ref.get("subject"), "reference": ref.get("reference"),
              "ref_output": ref.get("output"), "cand_output": cand.get("output"),
              "ref_correct": bool(ref.get("correct")), "cand_correct": bool(cand.get("correct")),
              "kl": d.kl, "ref_margin": d.ref_margin, "delta_gold": d.delta_gold, "delta_gold_prob": d.delta_gold_prob,
              "near_tie": d.ref_margin is not None and d.ref_margin < near_tie_margin}
             for d, (ref, cand) in zip(divergences, pairs)
             if bool(ref.get("correct")) != bool(cand.get("correct")) or d.agree is False]
    flips.sort(key=lambda flip: -(flip["kl"] if _finite(flip["kl"]) else (1e9 if flip["kl"] is not None else -1)))
    return flips


def _generation(pairs: list[tuple[dict, dict]], logprob_summary, logprobs_available: bool) -> dict:
    """Where generated outputs first diverge (prefill vs decode), for generation tasks."""
    max_len = max((len(record.get("token_ids") or []) for pair in pairs for record in pair), default=0)
    return {"is_generation": max_len > 2 or not logprobs_available, "max_generated_tokens": max_len,
            "n_compared": logprob_summary.n_token_compared, "n_diverged": logprob_summary.n_diverged,
            "n_prefill": logprob_summary.n_prefill, "n_decode": logprob_summary.n_decode,
            "first_divergence_median": logprob_summary.first_divergence_median}


# ---------------------------------------------------------------------------------------------
# Entry point


def compare_runs(ref_records, cand_records, noise=None, *, options: VerdictOptions | None = None,
                 labels: tuple[str, str] | None = None, ref_status: str | None = None,
                 cand_status: str | None = None) -> Comparison:
    """Compare a candidate run against the reference run (see the module docstring).

    ref_records / cand_records: lists of records (harness.evaluation.records), or EvalResult-like objects /
    dicts with ``status`` and ``records``. noise: A/A repeats of the reference (see NoiseFloor.from_any).
    options: the statistical settings (VerdictOptions(); its on_invalid says what happens when the prompts
    differ). labels: names of the two runs. ref_status / cand_status override the status ("ok" | "unresolved").
    """
    options = options or VerdictOptions()
    options.validate()
    labels = labels or ("reference", "candidate")
    label_dict = {"ref": labels[0], "cand": labels[1]}
    ref, cand, reasons = _read_runs(ref_records, cand_records, ref_status, cand_status)
    if reasons:
        return Comparison("unresolved", reasons=reasons, labels=label_dict, params=options.params())
    pairing: Pairing = pair_records(ref, cand)
    if not pairing.valid:
        if options.on_invalid == "raise":
            raise PairingError(pairing)
        return Comparison("unresolved", reasons=["comparison invalid: " + p for p in pairing.problems()],
                          labels=label_dict, pairing=pairing.summary(), params=options.params())
    return _compare_pairs(pairing, NoiseFloor.from_any(noise), options, label_dict)


def _routes(pairs: list[tuple[dict, dict]], divergences: list[SampleDivergence], options: VerdictOptions,
            noise_floor: NoiseFloor | None) -> list[Route]:
    """The evidence routes that run on these pairs, primary first."""
    differences, sizers = {}, {}
    changes = gold_probability_changes(divergences)
    if expected_accuracy_available(changes, len(pairs)):
        differences["expected_accuracy"] = expected_accuracy_difference(changes, options.alpha)
        sizers["expected_accuracy"] = lambda margin, alpha: stats.tail_guarded_pairs_needed(changes, margin, alpha)
    differences["accuracy"] = accuracy_difference(pairs, options.alpha)
    alpha_call = (options.call_alpha or options.alpha) / len(differences)  # Bonferroni over the routes that run
    return [judge_route(name, difference,
                        RouteSettings(alpha_call=alpha_call, alpha_equivalence=options.alpha,
                                      min_effect=options.min_effect, power=options.power,
                                      floor=noise_floor.floor(name) if noise_floor else None),
                        sizers.get(name))
            for name, difference in differences.items()]


def _kl_tolerance(options: VerdictOptions, noise_floor: NoiseFloor | None) -> tuple[float, str]:
    """The diagnostic's tolerance: the configured one, raised to the A/A (1 - rate) quantile when larger."""
    tolerance, source = options.kl_tolerance, options.kl_tolerance_source
    if noise_floor and noise_floor.pooled_kl():
        quantile = noise_floor.kl_quantile(1 - options.kl_exceed_rate)
        if quantile is not None and quantile > tolerance:
            tolerance = quantile
            source = f"A/A noise ({noise_floor.n_runs} repeats, {100 * (1 - options.kl_exceed_rate):.0f}th percentile)"
    return tolerance, source


def _accuracy_block(pairs: list[tuple[dict, dict]], alpha: float) -> dict:
    n = len(pairs)
    ref_count = sum(bool(ref.get("correct")) for ref, _ in pairs)
    cand_count = sum(bool(cand.get("correct")) for _, cand in pairs)
    ref_ci, cand_ci = stats.wilson_interval(ref_count, n, alpha), stats.wilson_interval(cand_count, n, alpha)
    return {"ref_points": 100 * ref_count / n, "cand_points": 100 * cand_count / n,
            "diff_points": 100 * (cand_count - ref_count) / n, "ref_correct": ref_count, "cand_correct": cand_count,
            "ref_ci": [100 * ref_ci[0], 100 * ref_ci[1]], "cand_ci": [100 * cand_ci[0], 100 * cand_ci[1]]}


def _compare_pairs(pairing: Pairing, noise_floor: NoiseFloor | None, options: VerdictOptions,
                   labels: dict) -> Comparison:
    """Measure the routes and the diagnostics on valid pairs, combine them, keep every number."""
    pairs = pairing.pairs
    divergences, logprob_summary = compare_logprobs(pairs, options.near_tie_margin)
    routes = _routes(pairs, divergences, options, noise_floor)
    decision = combine(routes, routes[0])
    tolerance, tolerance_source = _kl_tolerance(options, noise_floor)
    divergence: Divergence | None = divergence_diagnostic(divergences, tolerance, tolerance_source,
                                                          options.kl_exceed_rate, options.alpha)
    accuracy = _accuracy_block(pairs, options.alpha)
    by_name = {route.name: route.to_dict() for route in routes}
    b, c = stats.discordant_counts([bool(r.get("correct")) for r, _ in pairs], [bool(k.get("correct")) for _, k in pairs])
    flips = _flip_examples(divergences, pairs, options.near_tie_margin)
    return Comparison(
        verdict=decision.verdict, reasons=decision.reasons, evidence=decision.evidence,
        differs=bool(divergence and divergence.differs), n=len(pairs), labels=labels, pairing=pairing.summary(),
        primary=routes[0].name, routes=by_name, n_needed=decision.n_needed, accuracy=accuracy,
        expected_accuracy=by_name.get("expected_accuracy", {}), mcnemar=stats.mcnemar_exact(b, c).to_dict(),
        trtllm=trtllm_gate(len(pairs), accuracy["ref_points"], accuracy["cand_points"], options.trtllm_sigma,
                           options.trtllm_beta),
        logprob=logprob_summary.to_dict(),
        logprob_test=divergence.to_dict() if divergence else {"available": False},
        generation=_generation(pairs, logprob_summary, "expected_accuracy" in by_name),
        noise=noise_floor.to_dict() if noise_floor else {},
        params={**options.params(), "alpha_per_route": routes[0].settings.alpha_call, "routes": len(routes)},
        flips=flips[:20], flips_total=len(flips), per_sample=divergences)
