"""Verdict of a paired comparison: same | regressed | improved | inconclusive | unresolved.

``compare_runs(ref_records, cand_records, options=VerdictOptions(...))`` pairs the two runs
(harness/comparison/pairing.py: same id, same prompt text, same prompt token ids; different prompts
raise PairingError), gathers two independent pieces of paired evidence, each a small typed result,
and ``combine`` turns them into the verdict. Every number behind the verdict is kept.

1. Accuracy (``accuracy_evidence`` -> AccuracyEvidence) - McNemar's exact test on the discordant
   pairs (b = reference right & candidate wrong, c = the reverse), with Wilson intervals of both
   accuracies and a paired bootstrap interval of the difference. Accuracy calls
   ``regressed``/``improved`` when the two-sided p is below the per-test alpha AND the accuracy
   difference is at least ``min_effect`` points (default 1.0): a real but smaller effect is not
   called a regression by accuracy alone.

2. Log-probabilities (``logprob_evidence`` -> LogprobEvidence; when both runs carry answer-letter
   log-probs, i.e. MMLU-style tasks) - a divergence test, then a direction test:
   * Divergence: per sample, KL(ref || cand) of the letter distribution renormalised over the
     letters. Against exact equality *everything* differs: a deterministic CPU rerun gives KL 0 or
     ~1e-12, but two real engines differ at the level of bf16 rounding (mean KL ~3e-5 over the
     full vocabulary on the demo model, docs/method.md, section "Statistics"), so the tolerance is
     never zero. A sample *exceeds* when its KL is above ``kl_tolerance`` (default 0.01 nats, see
     below); acceptable noise may make at most ``kl_exceed_rate`` (default 5%) of samples exceed.
     The test is the one-sided binomial P(Bin(n, rate) >= k) for k exceeding samples
     (stats.exceedance_test). It is robust to the heavy tails of per-sample KL, which a t-test on
     the mean is not.
   * Direction: a divergence alone says "different", not "worse". The direction comes from the
     change of the probability the candidate gives the reference (right) answer,
     delta = p_cand(gold) - p_ref(gold) on the renormalised letters, tested by a paired sign-flip
     test on its *mean* - the change of the expected accuracy, in accuracy's own units. A
     probability is bounded, so the test is not at the mercy of the heavy tails log-probs have on
     near-chance items (measured on the demo model with scripts/bench_detection.py: at n = 100 the
     mean-probability test finds the direction of a 3-point fault in 20/20 draws, the same test on
     log-probs in 16/20). Each direction is tested one-sided at alpha: it is only consulted once
     the divergence test has rejected, so under "no difference" the verdict's false-alarm rate is
     bounded by the divergence test, and under "different but undirected" each directional call
     errs with probability <= alpha. If the probability test is not significant, McNemar's
     one-sided p at alpha may supply the direction. A divergence with no direction is reported as
     ``inconclusive`` with ``differs = True`` - never as regressed or improved. The mean log-prob
     change (minus the log-loss change) is reported beside it.

   Default tolerance 0.01 nats, measured with scripts/bench_detection.py on the demo model (1200
   items, results in reports/bench_detection.json): rounding every linear layer's weights and
   outputs to bf16 - the kernel-level difference any two engines have and a harness must accept -
   gives a per-sample letter KL of mean 2.9e-5, p95 1.0e-4 and max 0.004 (so no sample exceeds
   0.01; its 107 letter flips are all near ties, reference margin < 0.1 nats). Other precision
   changes a deployment accepts (fp16, fp8 weight quantize-dequantize, W8A8) stay at mean KL
   <= 2.6e-4 on the same model (docs/method.md, section "Statistics"). Faults that cost accuracy
   put 35-55% of samples above 0.01 (mean KL 0.1-0.35). Where engines differ more (a real model,
   other kernels), calibrate: pass ``kl_tolerance`` (``--kl-tolerance``) or A/A noise.

Two tests at once would double the false-alarm rate, so when both run each gets alpha/2
(Bonferroni); the direction test is only consulted after the divergence test rejected, so it needs
no further correction (see above).

A/A noise (``noise=``: A/A Comparisons of the reference config with itself, their to_dict()s, or
per-sample KL lists, e.g. from ``--aa-repeats k``): the KL tolerance is raised to the (1 - rate)
quantile of the pooled A/A per-sample KL (never lowered below ``kl_tolerance``, never from zero),
and an effect within the measured floor - |accuracy difference| no larger than the largest A/A
difference, or an exceedance rate no larger than the largest A/A rate - is at most
``inconclusive``.

``same`` needs evidence of sameness, not only the absence of a significant difference:
 * with log-probs: no divergence, the exceedance rate within the allowed rate, McNemar not
   significant, and the accuracy difference below min_effect or every discordant pair a sample
   whose KL is within tolerance (a flip noise can produce);
 * accuracy only: McNemar not significant and the paired bootstrap CI inside +-min_effect.
Two runs of one deterministic config (b = c = 0, KL = 0) are therefore ``same``; anything
between is ``inconclusive``. ``unresolved`` means a run crashed, hung or is empty.

Beside all this the comparison reports TensorRT-LLM's *unpaired* gate at the same n
(accuracy_core.py: threshold and minimum detectable effect theta, alpha 0.05, beta 0.2, sigma 50)
so users see why that gate needs 4096 samples.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from harness.comparison import stats
from harness.errors import HarnessError
from harness.comparison.logprobs import NEAR_TIE_MARGIN, SampleDivergence, compare_logprobs, divergences_for_test
from harness.comparison.pairing import Pairing, PairingError, pair_records

VERDICTS = ("same", "regressed", "improved", "inconclusive", "unresolved")
DEFAULT_ALPHA = 0.05
DEFAULT_MIN_EFFECT = 1.0  # accuracy points
DEFAULT_KL_TOLERANCE = 0.01  # nats per sample, letter distribution
DEFAULT_KL_EXCEED_RATE = 0.05  # share of samples acceptable noise may push above the tolerance
TRTLLM_ALPHA = 0.05  # the alpha TensorRT-LLM's accuracy gate uses


@dataclass(frozen=True)
class VerdictOptions:
    """The settings of a comparison; the defaults are the harness's (see the module docstring)."""

    alpha: float = DEFAULT_ALPHA  # family-wise significance level, split over the tests that run
    min_effect: float = DEFAULT_MIN_EFFECT  # accuracy points accuracy alone must move to call a change
    kl_tolerance: float = DEFAULT_KL_TOLERANCE  # per-sample letter KL (nats) acceptable noise may reach
    kl_exceed_rate: float = DEFAULT_KL_EXCEED_RATE  # share of samples noise may push beyond the tolerance
    near_tie_margin: float = NEAR_TIE_MARGIN  # reference top1-top2 margin (nats) of a near-tie flip
    n_boot: int = 2000  # paired bootstrap resamples
    seed: int = 0  # seed of the bootstrap and of the sign-flip test
    trtllm_sigma: float = 50.0  # sigma of TensorRT-LLM's unpaired gate
    trtllm_beta: float = 0.2  # beta of TensorRT-LLM's unpaired gate
    on_invalid: str = "raise"  # prompts differ: "raise" (PairingError) or "unresolved"

    def validate(self) -> None:
        """HarnessError naming the first setting out of range."""
        stats._check_alpha(self.alpha)
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
        return {"alpha": self.alpha, "min_effect": self.min_effect, "kl_tolerance": self.kl_tolerance,
                "kl_exceed_rate": self.kl_exceed_rate, "near_tie_margin": self.near_tie_margin,
                "n_boot": self.n_boot, "seed": self.seed}


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
# A/A noise floor


@dataclass
class NoiseFloor:
    """Measured spread between runs of the same config (A/A)."""

    kl_runs: list[list[float]] = field(default_factory=list)  # per A/A comparison: per-sample KL
    acc_diffs: list[float] = field(default_factory=list)  # per A/A comparison: accuracy diff, points

    @property
    def n_runs(self) -> int:
        return max(len(self.kl_runs), len(self.acc_diffs))

    def pooled_kl(self) -> list[float]:
        return [x for run in self.kl_runs for x in run if x is not None and not math.isnan(x)]

    def kl_quantile(self, q: float) -> float | None:
        pooled = self.pooled_kl()
        if not pooled:
            return None
        import numpy as np

        value = float(np.quantile(np.asarray(pooled, dtype=float), q))
        return value if math.isfinite(value) else None

    def max_exceed_rate(self, tolerance: float) -> float | None:
        rates = [sum(1 for x in run if not (x <= tolerance)) / len(run) for run in self.kl_runs if run]
        return max(rates) if rates else None

    def acc_floor(self) -> float | None:
        vals = [abs(x) for x in self.acc_diffs if _finite(x)]
        return max(vals) if vals else None

    def to_dict(self) -> dict:
        return {"n_runs": self.n_runs, "acc_diffs_points": self.acc_diffs,
                "kl_samples": len(self.pooled_kl()), "kl_p95": self.kl_quantile(0.95),
                "kl_max": max(self.pooled_kl(), default=None), "acc_floor_points": self.acc_floor()}

    @classmethod
    def from_any(cls, noise) -> "NoiseFloor | None":
        """Accept a NoiseFloor, a Comparison, a to_dict() of one, a list of per-sample KL values,
        or a list of any of these (one entry per A/A repeat)."""
        if noise is None:
            return None
        if isinstance(noise, NoiseFloor):
            return noise
        items = noise if isinstance(noise, (list, tuple)) else [noise]
        if items and all(isinstance(x, (int, float)) for x in items):
            items = [list(items)]  # one flat list of per-sample divergences
        floor = cls()
        for item in items:
            floor._add(item)
        return floor

    def _add(self, item) -> None:
        """Add one A/A repeat (see from_any)."""
        if isinstance(item, NoiseFloor):
            self.kl_runs += item.kl_runs
            self.acc_diffs += item.acc_diffs
        elif isinstance(item, Comparison):
            if item.verdict == "unresolved":
                return
            kl_values = divergences_for_test(item.per_sample)
            if kl_values:
                self.kl_runs.append(kl_values)
            if _finite(item.accuracy.get("diff_points")):
                self.acc_diffs.append(item.accuracy["diff_points"])
        elif isinstance(item, dict):
            per_sample = item.get("per_sample") or []
            kl_values = [float(d["kl"]) if _finite(d.get("kl")) else math.inf for d in per_sample
                         if d.get("status") in ("ok", "nonfinite_ref", "nonfinite_cand")]
            if kl_values:
                self.kl_runs.append(kl_values)
            acc_diff = (item.get("accuracy") or {}).get("diff_points")
            if _finite(acc_diff):
                self.acc_diffs.append(float(acc_diff))
        elif isinstance(item, (list, tuple)):
            self.kl_runs.append([float(x) for x in item])
        else:
            raise HarnessError(f"A/A noise entry of type {type(item).__name__} not understood; pass Comparisons, "
                               f"their to_dict(), or lists of per-sample KL values")


# ---------------------------------------------------------------------------------------------
# The comparison


@dataclass
class Comparison:
    verdict: str
    reasons: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)  # which tests support the verdict
    differs: bool = False  # log-probs diverge beyond tolerance (whatever the direction)
    n: int = 0
    labels: dict = field(default_factory=dict)
    pairing: dict = field(default_factory=dict)
    accuracy: dict = field(default_factory=dict)
    mcnemar: dict = field(default_factory=dict)
    bootstrap: dict = field(default_factory=dict)
    trtllm: dict = field(default_factory=dict)
    logprob: dict = field(default_factory=dict)
    logprob_test: dict = field(default_factory=dict)
    generation: dict = field(default_factory=dict)
    noise: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    flips: list[dict] = field(default_factory=list)  # examples of discordant / flipped samples (largest KL first)
    flips_total: int = 0  # how many samples are discordant or flipped (flips holds at most 20)
    per_sample: list[SampleDivergence] = field(default_factory=list)

    def to_dict(self, per_sample: bool = False) -> dict:
        d = {k: getattr(self, k) for k in ("verdict", "reasons", "evidence", "differs", "n", "labels", "pairing",
                                          "accuracy", "mcnemar", "bootstrap", "trtllm", "logprob", "logprob_test",
                                          "generation", "noise", "params", "flips", "flips_total")}
        if per_sample:
            d["per_sample"] = [vars(s) for s in self.per_sample]
        return json_safe(d)

    # -- human text: one helper per block ------------------------------------------------------
    def summary_lines(self) -> list[str]:
        lines = self._verdict_lines()
        if self.verdict == "unresolved" and not self.accuracy:
            return lines
        for block in (self._pairing_lines, self._accuracy_lines, self._logprob_lines, self._generation_lines,
                      self._noise_lines, self._trtllm_lines):
            lines += block()
        return lines

    def _verdict_lines(self) -> list[str]:
        evidence = f" (evidence: {', '.join(self.evidence)})" if self.evidence else ""
        undirected = " - log-probs differ beyond tolerance, direction unclear" \
            if self.differs and self.verdict == "inconclusive" else ""
        return [f"verdict: {self.verdict.upper()}{evidence}{undirected}"] + \
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
        bootstrap, mcnemar, min_effect = self.bootstrap, self.mcnemar, self.params["min_effect"]
        ref_ci, cand_ci = accuracy["ref_ci"], accuracy["cand_ci"]
        return [
            f"accuracy: reference {accuracy['ref_points']:.1f}% [{ref_ci[0]:.1f}, {ref_ci[1]:.1f}]  "
            f"candidate {accuracy['cand_points']:.1f}% [{cand_ci[0]:.1f}, {cand_ci[1]:.1f}]  (Wilson 95%)",
            f"difference: {accuracy['diff_points']:+.1f} points, paired bootstrap "
            f"{100 * (1 - bootstrap['alpha']):.0f}% CI [{100 * bootstrap['lo']:+.1f}, {100 * bootstrap['hi']:+.1f}]  "
            f"(min effect {min_effect:g} point{'' if min_effect == 1 else 's'})",
            f"McNemar exact: b={mcnemar['b']} (reference right, candidate wrong), c={mcnemar['c']} (reverse); "
            f"p two-sided {_p(mcnemar['p_two_sided'])}, one-sided worse {_p(mcnemar['p_regressed'])}, better "
            f"{_p(mcnemar['p_improved'])}  (alpha per test {self.params['alpha_per_test']:g})"]

    def _logprob_lines(self) -> list[str]:
        logprob = self.logprob
        if not logprob or logprob.get("n_scored", 0) + logprob.get("n_nonfinite_cand", 0) \
                + logprob.get("n_nonfinite_ref", 0) <= 0:
            return []
        nonfinite = logprob["n_nonfinite_ref"] + logprob["n_nonfinite_cand"] + logprob["n_nonfinite_both"]
        lines = [f"log-probs (answer letters, renormalised): {logprob['n_scored']} scored, "
                 f"{logprob['n_missing']} missing, {nonfinite} non-finite (ref {logprob['n_nonfinite_ref']}, "
                 f"cand {logprob['n_nonfinite_cand']}, both {logprob['n_nonfinite_both']})"]
        if logprob.get("kl_mean") is not None:
            gold_prob_mean = logprob.get("delta_gold_prob_mean")
            lines += [
                f"  KL(ref||cand) mean {_g(logprob['kl_mean'])}, median {_g(logprob['kl_median'])}, "
                f"p95 {_g(logprob['kl_p95'])}, max {_g(logprob['kl_max'])}; JS mean {_g(logprob['js_mean'])}; "
                f"top-1 agreement {100 * logprob['top1_agreement']:.1f}%",
                f"  flips: {logprob['flips']} ({logprob['near_tie_flips']} near-tie with reference margin < "
                f"{logprob['near_tie_margin']:g} nats, {logprob['confident_flips']} confident)",
                f"  right answer: mean probability change "
                f"{'-' if gold_prob_mean is None else f'{100 * gold_prob_mean:+.2f}'} points (expected accuracy), "
                f"mean log-prob change {_g(logprob['delta_gold_mean'])} nats"]
        return lines + self._logprob_test_lines()

    def _logprob_test_lines(self) -> list[str]:
        test = self.logprob_test
        if not test.get("available"):
            return []
        lines = [f"log-prob test: {test['k']}/{test['n']} samples with KL > {_g(test['tolerance'])} nats "
                 f"(tolerance from {test['tolerance_source']}), noise may give {100 * test['allowed_rate']:.0f}% -> "
                 f"p = {_p(test['p'])}: {'DIVERGENT' if test['divergent'] else 'within tolerance'}"]
        if test["divergent"]:
            sign_flip = test.get("direction_test") or {}
            mean = sign_flip.get("mean")
            lines.append(f"  direction: right answer's probability {'-' if mean is None else f'{100 * mean:+.2f}'} "
                         f"points on average, sign-flip p worse {_p(sign_flip.get('p_less'))} / better "
                         f"{_p(sign_flip.get('p_greater'))} (one-sided, alpha {self.params['alpha']:g}) -> "
                         f"{test.get('direction') or 'no clear direction'} ({test.get('direction_source') or '-'})")
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
        return [f"A/A noise floor: {noise.get('n_runs')} repeats; accuracy floor "
                f"+-{_g(noise.get('acc_floor_points'))} points; A/A KL p95 {_g(noise.get('kl_p95'))}"]

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
# Evidence 1: accuracy


DIRECTIONS = ("regressed", "improved")


@dataclass
class AccuracyEvidence:
    """Paired accuracy of the two runs, its tests, and the call accuracy makes on its own."""

    n: int
    ref_correct: int
    cand_correct: int
    ref_interval: tuple[float, float]  # Wilson interval of the reference accuracy (proportions)
    cand_interval: tuple[float, float]
    mcnemar: stats.McNemar
    bootstrap: stats.BootstrapCI  # paired bootstrap interval of the difference (proportions)
    alpha: float  # per test
    significant: bool = False  # McNemar two-sided p < alpha
    in_noise: bool = False  # |difference| within the A/A accuracy floor
    call: str | None = None  # "regressed" | "improved" when accuracy alone makes the call
    notes: list[str] = field(default_factory=list)  # why a significant difference makes no call

    @property
    def ref_points(self) -> float:
        return 100.0 * self.ref_correct / self.n

    @property
    def cand_points(self) -> float:
        return 100.0 * self.cand_correct / self.n

    @property
    def diff_points(self) -> float:
        return self.cand_points - self.ref_points

    def to_dict(self) -> dict:
        """The ``accuracy`` block of a Comparison."""
        return {"ref_points": self.ref_points, "cand_points": self.cand_points, "diff_points": self.diff_points,
                "ref_correct": self.ref_correct, "cand_correct": self.cand_correct,
                "ref_ci": [100 * self.ref_interval[0], 100 * self.ref_interval[1]],
                "cand_ci": [100 * self.cand_interval[0], 100 * self.cand_interval[1]]}


def accuracy_evidence(pairs: list[tuple[dict, dict]], options: VerdictOptions, alpha_per_test: float,
                      noise_floor: NoiseFloor | None) -> AccuracyEvidence:
    """Wilson intervals, McNemar's exact test, the paired bootstrap and the min-effect / A/A check."""
    ref_correct = [bool(ref.get("correct")) for ref, _ in pairs]
    cand_correct = [bool(cand.get("correct")) for _, cand in pairs]
    n, ref_count, cand_count = len(pairs), sum(ref_correct), sum(cand_correct)
    losses, gains = stats.discordant_counts(ref_correct, cand_correct)
    evidence = AccuracyEvidence(
        n=n, ref_correct=ref_count, cand_correct=cand_count,
        ref_interval=stats.wilson_interval(ref_count, n, options.alpha),
        cand_interval=stats.wilson_interval(cand_count, n, options.alpha),
        mcnemar=stats.mcnemar_exact(losses, gains),
        bootstrap=stats.paired_bootstrap_diff(ref_correct, cand_correct, n_boot=options.n_boot, seed=options.seed,
                                              alpha=options.alpha),
        alpha=alpha_per_test)
    floor = noise_floor.acc_floor() if noise_floor else None
    diff = evidence.diff_points
    evidence.significant = evidence.mcnemar.p_two_sided < alpha_per_test
    evidence.in_noise = floor is not None and abs(diff) <= floor
    if not evidence.significant:
        return evidence
    if abs(diff) < options.min_effect:
        evidence.notes.append(f"accuracy differs significantly (McNemar p {_p(evidence.mcnemar.p_two_sided)}) but by "
                              f"{diff:+.2f} points, below min effect {options.min_effect:g}")
    elif evidence.in_noise:
        evidence.notes.append(f"accuracy difference {diff:+.1f} points is within the A/A noise floor (+-{floor:.1f})")
    else:
        evidence.call = "regressed" if diff < 0 else "improved"
    return evidence


def trtllm_gate(accuracy: AccuracyEvidence, options: VerdictOptions) -> dict:
    """TensorRT-LLM's unpaired accuracy gate at the same n (reported beside the verdict, not part of it)."""
    n, ref_points, diff = accuracy.n, accuracy.ref_points, accuracy.diff_points
    sigma, beta = options.trtllm_sigma, options.trtllm_beta
    threshold = stats.trtllm_threshold(n, ref_points, sigma, TRTLLM_ALPHA)
    return {"n": n, "alpha": TRTLLM_ALPHA, "beta": beta, "sigma": sigma,
            "theta": stats.trtllm_theta(n, sigma, TRTLLM_ALPHA, beta), "threshold": threshold,
            "threshold_offset": threshold - ref_points, "passes": accuracy.cand_points >= threshold,
            "theta_4096": stats.trtllm_theta(4096, sigma, TRTLLM_ALPHA, beta), "observed_effect": diff,
            "n_needed": stats.trtllm_samples_needed(abs(diff), sigma, TRTLLM_ALPHA, beta) if diff else None,
            "source": "tests/integration/defs/accuracy/accuracy_core.py compute_theta/compute_threshold"}


# ---------------------------------------------------------------------------------------------
# Evidence 2: log-probabilities


@dataclass
class LogprobEvidence:
    """The log-prob divergence test, its direction test, and the call they make on their own."""

    available: bool  # enough samples carry answer-letter log-probs on both sides
    alpha: float | None = None  # per test
    tolerance_source: str = ""
    exceedance: stats.Exceedance | None = None  # the divergence test (k of n samples beyond the tolerance)
    divergent: bool = False
    direction: str | None = None  # "regressed" | "improved" | None
    direction_source: str | None = None
    direction_test: stats.SignFlip | None = None  # on the change of the right answer's probability
    aa_max_exceed_rate: float | None = None
    in_noise: bool = False  # exceedance rate within the largest A/A rate
    unexplained_discordant: int | None = None  # discordant samples whose KL is beyond tolerance
    call: str | None = None  # "regressed" | "improved" | "differs" (no direction) | None
    notes: list[str] = field(default_factory=list)  # why a divergence makes no call

    @property
    def tolerance(self) -> float:
        return self.exceedance.tolerance

    def to_dict(self) -> dict:
        """The ``logprob_test`` block of a Comparison."""
        if not self.available:
            return {"available": False}
        return {"available": True, **self.exceedance.to_dict(), "tolerance_source": self.tolerance_source,
                "divergent": self.divergent, "alpha": self.alpha, "direction": self.direction,
                "direction_source": self.direction_source, "direction_test": self.direction_test.to_dict(),
                "aa_max_exceed_rate": self.aa_max_exceed_rate, "unexplained_discordant": self.unexplained_discordant}


def logprobs_available(divergences: list[SampleDivergence], n: int) -> bool:
    """The log-prob test runs when at least half of the n pairs have a usable divergence."""
    kl_values = divergences_for_test(divergences)
    return len(kl_values) > 0 and len(kl_values) >= 0.5 * n


def logprob_evidence(divergences: list[SampleDivergence], pairs: list[tuple[dict, dict]], accuracy: AccuracyEvidence,
                     options: VerdictOptions, alpha_per_test: float, noise_floor: NoiseFloor | None) -> LogprobEvidence:
    """KL exceedance test at alpha_per_test, then (if divergent) the direction; A/A noise caps the call."""
    tolerance, tolerance_source = _kl_tolerance(options, noise_floor)
    exceedance = stats.exceedance_test(divergences_for_test(divergences), tolerance, options.kl_exceed_rate)
    divergent = exceedance.p < alpha_per_test
    deltas = [d.delta_gold_prob for d in divergences if d.usable and d.delta_gold_prob is not None]
    sign_flip = stats.sign_flip_test(deltas, seed=options.seed)
    direction, direction_source = _direction(sign_flip, accuracy, options.alpha) if divergent else (None, None)
    aa_rate = noise_floor.max_exceed_rate(tolerance) if noise_floor and noise_floor.kl_runs else None
    evidence = LogprobEvidence(
        available=True, alpha=alpha_per_test, tolerance_source=tolerance_source, exceedance=exceedance,
        divergent=divergent, direction=direction, direction_source=direction_source, direction_test=sign_flip,
        aa_max_exceed_rate=aa_rate, in_noise=aa_rate is not None and exceedance.rate <= aa_rate,
        unexplained_discordant=_unexplained_discordant(divergences, pairs, tolerance))
    if divergent and evidence.in_noise:
        evidence.notes.append(f"log-prob exceedance rate {100 * exceedance.rate:.1f}% is within the A/A noise floor "
                              f"({100 * aa_rate:.1f}%)")
    elif divergent:
        evidence.call = direction or "differs"
    return evidence


def _kl_tolerance(options: VerdictOptions, noise_floor: NoiseFloor | None) -> tuple[float, str]:
    """The configured tolerance, raised to the A/A (1 - rate) quantile when that is larger."""
    tolerance = options.kl_tolerance
    source = "the default; calibrate with --kl-tolerance or A/A repeats" \
        if options.kl_tolerance == DEFAULT_KL_TOLERANCE else "--kl-tolerance"
    if noise_floor and noise_floor.pooled_kl():
        quantile = noise_floor.kl_quantile(1 - options.kl_exceed_rate)
        if quantile is not None and quantile > tolerance:
            tolerance = quantile
            source = f"A/A noise ({noise_floor.n_runs} repeats, {100 * (1 - options.kl_exceed_rate):.0f}th percentile)"
    return tolerance, source


def _direction(sign_flip: stats.SignFlip, accuracy: AccuracyEvidence, alpha: float) -> tuple[str | None, str | None]:
    """Direction of a divergence: the right answer's probability first, else McNemar one-sided (each at alpha)."""
    mcnemar, diff = accuracy.mcnemar, accuracy.diff_points
    if sign_flip.p_less < alpha and sign_flip.mean < 0:
        return "regressed", "right answer's probability"
    if sign_flip.p_greater < alpha and sign_flip.mean > 0:
        return "improved", "right answer's probability"
    if mcnemar.p_regressed < alpha and diff < 0:
        return "regressed", "accuracy (McNemar one-sided)"
    if mcnemar.p_improved < alpha and diff > 0:
        return "improved", "accuracy (McNemar one-sided)"
    return None, None


def _unexplained_discordant(divergences: list[SampleDivergence], pairs: list[tuple[dict, dict]],
                            tolerance: float) -> int:
    """Discordant pairs whose KL is not within tolerance (a flip noise alone would not produce)."""
    return sum(1 for d, (ref, cand) in zip(divergences, pairs)
               if bool(ref.get("correct")) != bool(cand.get("correct"))
               and not (d.kl is not None and d.kl <= tolerance))


# ---------------------------------------------------------------------------------------------
# Combining the evidence


@dataclass
class Decision:
    verdict: str
    reasons: list[str]
    evidence: list[str]  # which tests support the verdict
    differs: bool  # log-probs diverge beyond tolerance (whatever the direction)


def combine(accuracy: AccuracyEvidence, logprobs: LogprobEvidence, options: VerdictOptions) -> Decision:
    """The verdict from the two pieces of evidence (see the module docstring)."""
    calls = {call for call in (accuracy.call, logprobs.call) if call in DIRECTIONS}
    evidence = (["accuracy"] if accuracy.call else []) + (["log-probs"] if logprobs.call in DIRECTIONS else [])
    notes = accuracy.notes + logprobs.notes
    if len(calls) == 2:
        verdict, reasons = "inconclusive", [f"accuracy says {accuracy.call} but the log-probs say {logprobs.call}"]
    elif calls:
        verdict, reasons = calls.pop(), _call_reasons(accuracy, logprobs)
    elif logprobs.call == "differs":
        test = logprobs.exceedance
        verdict, reasons = "inconclusive", [
            f"log-probs differ ({test.k}/{test.n} samples beyond {_g(test.tolerance)} nats, p {_p(test.p)}) but "
            f"neither the right answer's probability nor accuracy shows a direction"]
    elif notes:
        verdict, reasons = _noted_verdict(accuracy, logprobs, options.min_effect), list(notes)
    else:
        verdict, why = _same_or_inconclusive(accuracy, logprobs, options)
        reasons = [why]
    if verdict in DIRECTIONS and notes:
        reasons += notes
    return Decision(verdict, reasons, evidence, differs=logprobs.call is not None)


def _call_reasons(accuracy: AccuracyEvidence, logprobs: LogprobEvidence) -> list[str]:
    """Why the evidence that made the (single-direction) call made it."""
    reasons = []
    if accuracy.call:
        reasons.append(f"accuracy {accuracy.diff_points:+.1f} points, McNemar p {_p(accuracy.mcnemar.p_two_sided)} "
                       f"< {accuracy.alpha:g}")
    if logprobs.call in DIRECTIONS:
        test = logprobs.exceedance
        reasons.append(f"{test.k}/{test.n} samples diverge beyond {_g(test.tolerance)} nats (p {_p(test.p)} < "
                       f"{logprobs.alpha:g}); direction from the {logprobs.direction_source}")
    return reasons


def _noted_verdict(accuracy: AccuracyEvidence, logprobs: LogprobEvidence, min_effect: float) -> str:
    """A significant effect that made no call: ``same`` when it is practically the same, else inconclusive.

    Practically the same: an accuracy effect below min_effect whose whole paired CI sits inside
    +-min_effect, with no log-prob divergence and nothing within an A/A floor."""
    lo, hi = 100 * accuracy.bootstrap.lo, 100 * accuracy.bootstrap.hi
    if not logprobs.notes and not accuracy.in_noise and lo > -min_effect and hi < min_effect \
            and not (logprobs.available and logprobs.divergent):
        return "same"
    return "inconclusive"


def _same_or_inconclusive(accuracy: AccuracyEvidence, logprobs: LogprobEvidence,
                          options: VerdictOptions) -> tuple[str, str]:
    """No test made a call: ``same`` needs evidence of sameness (see the module docstring)."""
    diff, min_effect, rate = accuracy.diff_points, options.min_effect, options.kl_exceed_rate
    if accuracy.significant:
        return "inconclusive", "accuracy differs but no call could be made"
    if logprobs.available:
        test = logprobs.exceedance
        if test.rate > rate:
            return "inconclusive", (f"{test.k}/{test.n} samples beyond the KL tolerance: more than noise "
                                    f"should give ({100 * rate:.0f}%) but not significantly so at this n")
        if abs(diff) >= min_effect and logprobs.unexplained_discordant:
            return "inconclusive", (f"accuracy {diff:+.1f} points with {logprobs.unexplained_discordant} discordant "
                                    f"samples whose KL is beyond tolerance, not significant at this n")
        return "same", (f"log-probs within tolerance on {test.n - test.k}/{test.n} samples and "
                        f"accuracy {diff:+.1f} points (McNemar not significant)")
    lo, hi = 100 * accuracy.bootstrap.lo, 100 * accuracy.bootstrap.hi
    if lo > -min_effect and hi < min_effect or (lo == hi == 0):
        return "same", f"paired CI [{lo:+.1f}, {hi:+.1f}] points lies within +-{min_effect:g} (no log-probs to compare)"
    return "inconclusive", (f"no significant difference, but the paired CI [{lo:+.1f}, {hi:+.1f}] points does not rule "
                            f"out an effect of {min_effect:g} points (no log-probs to compare)")


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
    return _compare_pairs(pairing, noise, options, label_dict)


def _compare_pairs(pairing: Pairing, noise, options: VerdictOptions, labels: dict) -> Comparison:
    """Gather both pieces of evidence on valid pairs, combine them, keep every number."""
    pairs = pairing.pairs
    divergences, logprob_summary = compare_logprobs(pairs, options.near_tie_margin)
    available = logprobs_available(divergences, len(pairs))
    tests = 2 if available else 1
    alpha_per_test = options.alpha / tests  # Bonferroni over the tests that run
    noise_floor = NoiseFloor.from_any(noise)
    accuracy = accuracy_evidence(pairs, options, alpha_per_test, noise_floor)
    logprobs = logprob_evidence(divergences, pairs, accuracy, options, alpha_per_test, noise_floor) \
        if available else LogprobEvidence(available=False)
    decision = combine(accuracy, logprobs, options)
    flips = _flip_examples(divergences, pairs, options.near_tie_margin)
    return Comparison(verdict=decision.verdict, reasons=decision.reasons, evidence=decision.evidence,
                      differs=decision.differs, n=len(pairs), labels=labels, pairing=pairing.summary(),
                      accuracy=accuracy.to_dict(), mcnemar=accuracy.mcnemar.to_dict(),
                      bootstrap=accuracy.bootstrap.to_dict(), trtllm=trtllm_gate(accuracy, options),
                      logprob=logprob_summary.to_dict(), logprob_test=logprobs.to_dict(),
                      generation=_generation(pairs, logprob_summary, available),
                      noise=noise_floor.to_dict() if noise_floor else {},
                      params={**options.params(), "alpha_per_test": alpha_per_test, "tests": tests},
                      flips=flips[:20], flips_total=len(flips), per_sample=divergences)
