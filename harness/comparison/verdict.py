"""Verdict of a paired comparison: same | regressed | improved | inconclusive | unresolved.

``compare_runs(ref_records, cand_records, ...)`` pairs the two runs (harness/comparison/pairing.py: same id,
same prompt text, same prompt token ids; different prompts raise PairingError), then weighs two
independent pieces of paired evidence and always keeps every number behind the verdict.

1. Accuracy — McNemar's exact test on the discordant pairs (b = reference right & candidate wrong,
   c = the reverse). It calls ``regressed``/``improved`` when the two-sided p is below the per-test
   alpha AND the accuracy difference is at least ``min_effect`` points (default 1.0): a real but
   smaller effect is not called a regression by accuracy alone.

2. Log-probabilities (when both runs carry answer-letter log-probs, i.e. MMLU-style tasks) —
   a divergence test, then a direction test:
   * Divergence: per sample, KL(ref || cand) of the letter distribution renormalised over the
     letters. Against exact equality *everything* differs (a deterministic CPU rerun gives KL 0 or
     ~1e-12, but real engines differ at bf16-rounding level: mean KL ~3e-5 over the full vocab on
     the demo model, cpu-notes §4), so the tolerance is never zero. A sample *exceeds* when its KL
     is above ``kl_tolerance`` (default 0.01 nats, see below); acceptable noise may make at most
     ``kl_exceed_rate`` (default 5%) of samples exceed. The test is the one-sided binomial
     P(Bin(n, rate) >= k) for k exceeding samples (stats.exceedance_test). It is robust to the heavy
     tails of per-sample KL, which a t-test on the mean is not.
   * Direction: a divergence alone says "different", not "worse". The direction comes from the
     change of the probability the candidate gives the reference (right) answer,
     delta = p_cand(gold) - p_ref(gold) on the renormalised letters, tested by a paired sign-flip
     test on its *mean* - the change of the expected accuracy, in accuracy's own units. A
     probability is bounded, so the test is not at the mercy of the heavy tails log-probs have on
     near-chance items (measured on the demo model: at n = 100 the mean-probability test finds the
     direction of a 3-point fault in 20/20 draws, the same test on log-probs in 16/20,
     scripts/bench_detection.py). Each direction is tested one-sided at alpha: it is only
     consulted once the divergence test has rejected, so under "no difference" the verdict's
     false-alarm rate is bounded by the divergence test, and under "different but undirected"
     each directional call errs with probability <= alpha. If the probability test is not
     significant, McNemar's one-sided p at alpha may supply the direction. A divergence with no
     direction is reported as ``inconclusive`` with ``differs = True`` - never as regressed or
     improved. The mean log-prob change (minus the log-loss change) is reported beside it.

   Default tolerance 0.01 nats, measured (scripts/bench_detection.py, demo model, 1200 items): rounding
   every linear layer's weights and outputs to bf16 - the kernel-level difference any two engines
   have and a harness must accept - gives a per-sample letter KL of mean 2.9e-5, p95 1.0e-4 and
   max 0.004 (so no sample exceeds 0.01; its 107 letter flips are all near ties, reference margin
   < 0.1 nats); the "accepted" precision changes of cpu-notes §4 (fp16, fp8 weight QDQ, W8A8) have
   mean KL <= 2.6e-4. Faults that cost accuracy put 35-55% of samples above 0.01 (mean KL
   0.1-0.35). Where engines differ more (a real model, other kernels), calibrate: pass
   ``kl_tolerance`` (``--kl-tolerance``) or A/A noise.

Two tests at once would double the false-alarm rate, so when both run each gets alpha/2
(Bonferroni); the direction test is only consulted after the divergence test rejected, so it needs
no further correction (see above).

A/A noise (``noise=``: A/A Comparisons of the reference config with itself, their to_dict()s, or
per-sample KL lists, e.g. from ``--aa-repeats k``): the KL tolerance is raised to the (1 - rate)
quantile of the pooled A/A per-sample KL (never lowered below ``kl_tolerance``, never from zero),
and an effect within the measured floor — |accuracy difference| no larger than the largest A/A
difference, or an exceedance rate no larger than the largest A/A rate — is at most
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
from typing import Any

from harness.comparison import stats
from harness.errors import HarnessError
from harness.comparison.logprobs import NEAR_TIE_MARGIN, SampleDivergence, compare_logprobs, divergences_for_test
from harness.comparison.pairing import Pairing, PairingError, pair_records

VERDICTS = ("same", "regressed", "improved", "inconclusive", "unresolved")
DEFAULT_ALPHA = 0.05
DEFAULT_MIN_EFFECT = 1.0  # accuracy points
DEFAULT_KL_TOLERANCE = 0.01  # nats per sample, letter distribution
DEFAULT_KL_EXCEED_RATE = 0.05  # share of samples acceptable noise may push above the tolerance


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

        v = float(np.quantile(np.asarray(pooled, dtype=float), q))
        return v if math.isfinite(v) else None

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
        nf = cls()
        for it in items:
            if isinstance(it, NoiseFloor):
                nf.kl_runs += it.kl_runs
                nf.acc_diffs += it.acc_diffs
            elif isinstance(it, Comparison):
                if it.verdict == "unresolved":
                    continue
                kl = divergences_for_test(it.per_sample)
                if kl:
                    nf.kl_runs.append(kl)
                if _finite(it.accuracy.get("diff_points")):
                    nf.acc_diffs.append(it.accuracy["diff_points"])
            elif isinstance(it, dict):
                per = it.get("per_sample") or []
                kl = [float(d["kl"]) if _finite(d.get("kl")) else math.inf for d in per
                      if d.get("status") in ("ok", "nonfinite_ref", "nonfinite_cand")]
                if kl:
                    nf.kl_runs.append(kl)
                acc = (it.get("accuracy") or {}).get("diff_points")
                if _finite(acc):
                    nf.acc_diffs.append(float(acc))
            elif isinstance(it, (list, tuple)):
                nf.kl_runs.append([float(x) for x in it])
            else:
                raise HarnessError(f"A/A noise entry of type {type(it).__name__} not understood; pass Comparisons, "
                                   f"their to_dict(), or lists of per-sample KL values")
        return nf


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

    # -- human text ----------------------------------------------------------------------------
    def summary_lines(self) -> list[str]:
        L = []
        ev = f" (evidence: {', '.join(self.evidence)})" if self.evidence else ""
        extra = " - log-probs differ beyond tolerance, direction unclear" if self.differs and self.verdict == "inconclusive" else ""
        L.append(f"verdict: {self.verdict.upper()}{ev}{extra}")
        for r in self.reasons:
            L.append(f"  because: {r}")
        if self.verdict == "unresolved" and not self.accuracy:
            return L
        lab = self.labels
        pr = self.pairing
        L.append(f"paired samples: {self.n} (reference {lab.get('ref', 'A')!r} vs candidate {lab.get('cand', 'B')!r}); "
                 f"prompt text checked on all, prompt token ids on {pr.get('token_checked', 0)}")
        for p in pr.get("problems", []):
            L.append(f"  ! {p}")
        a = self.accuracy
        if a:
            L.append(f"accuracy: reference {a['ref_points']:.1f}% [{a['ref_ci'][0]:.1f}, {a['ref_ci'][1]:.1f}]  "
                     f"candidate {a['cand_points']:.1f}% [{a['cand_ci'][0]:.1f}, {a['cand_ci'][1]:.1f}]  (Wilson 95%)")
            bs = self.bootstrap
            L.append(f"difference: {a['diff_points']:+.1f} points, paired bootstrap {100 * (1 - bs['alpha']):.0f}% CI "
                     f"[{100 * bs['lo']:+.1f}, {100 * bs['hi']:+.1f}]  (min effect {self.params['min_effect']:g} point{'' if self.params['min_effect'] == 1 else 's'})")
            m = self.mcnemar
            L.append(f"McNemar exact: b={m['b']} (reference right, candidate wrong), c={m['c']} (reverse); "
                     f"p two-sided {_p(m['p_two_sided'])}, one-sided worse {_p(m['p_regressed'])}, better "
                     f"{_p(m['p_improved'])}  (alpha per test {self.params['alpha_per_test']:g})")
        lp = self.logprob
        if lp and lp.get("n_scored", 0) + lp.get("n_nonfinite_cand", 0) + lp.get("n_nonfinite_ref", 0) > 0:
            nf = lp["n_nonfinite_ref"] + lp["n_nonfinite_cand"] + lp["n_nonfinite_both"]
            L.append(f"log-probs (answer letters, renormalised): {lp['n_scored']} scored, {lp['n_missing']} missing, "
                     f"{nf} non-finite (ref {lp['n_nonfinite_ref']}, cand {lp['n_nonfinite_cand']}, "
                     f"both {lp['n_nonfinite_both']})")
            if lp.get("kl_mean") is not None:
                L.append(f"  KL(ref||cand) mean {_g(lp['kl_mean'])}, median {_g(lp['kl_median'])}, p95 "
                         f"{_g(lp['kl_p95'])}, max {_g(lp['kl_max'])}; JS mean {_g(lp['js_mean'])}; top-1 agreement "
                         f"{100 * lp['top1_agreement']:.1f}%")
                L.append(f"  flips: {lp['flips']} ({lp['near_tie_flips']} near-tie with reference margin < "
                         f"{lp['near_tie_margin']:g} nats, {lp['confident_flips']} confident)")
                dpm = lp.get("delta_gold_prob_mean")
                L.append(f"  right answer: mean probability change {'-' if dpm is None else f'{100 * dpm:+.2f}'} "
                         f"points (expected accuracy), mean log-prob change {_g(lp['delta_gold_mean'])} nats")
            t = self.logprob_test
            if t.get("available"):
                L.append(f"log-prob test: {t['k']}/{t['n']} samples with KL > {_g(t['tolerance'])} nats "
                         f"(tolerance from {t['tolerance_source']}), noise may give {100 * t['allowed_rate']:.0f}% -> "
                         f"p = {_p(t['p'])}: {'DIVERGENT' if t['divergent'] else 'within tolerance'}")
                sf = t.get("direction_test") or {}
                if t["divergent"]:
                    mean = sf.get("mean")
                    L.append(f"  direction: right answer's probability {'-' if mean is None else f'{100 * mean:+.2f}'} "
                             f"points on average, sign-flip p worse {_p(sf.get('p_less'))} / better "
                             f"{_p(sf.get('p_greater'))} (one-sided, alpha {self.params['alpha']:g}) -> "
                             f"{t.get('direction') or 'no clear direction'} ({t.get('direction_source') or '-'})")
        g = self.generation
        if g.get("n_diverged") and g.get("is_generation"):
            L.append(f"generation: {g['n_diverged']}/{g['n_compared']} outputs diverge; first divergent token at "
                     f"position 0 (prefill) in {g['n_prefill']}, later (decode / KV-cache path) in {g['n_decode']}; "
                     f"median position {_g(g['first_divergence_median'])}")
        if self.noise:
            nz = self.noise
            L.append(f"A/A noise floor: {nz.get('n_runs')} repeats; accuracy floor +-{_g(nz.get('acc_floor_points'))} "
                     f"points; A/A KL p95 {_g(nz.get('kl_p95'))}")
        tr = self.trtllm
        if tr:
            need = f"; this {abs(tr['observed_effect']):.1f}-point effect would need n >= {tr['n_needed']:,}" \
                if tr.get("n_needed") else ""
            L.append(f"TensorRT-LLM unpaired gate at n={self.n}: threshold {tr['threshold']:.1f} "
                     f"(reference {tr['threshold_offset']:+.1f}) -> candidate {'passes' if tr['passes'] else 'FAILS'}; "
                     f"minimum detectable effect {tr['theta']:.1f} points (alpha {tr['alpha']:g}, beta {tr['beta']:g}, "
                     f"sigma {tr['sigma']:g}; n=4096 gives {tr['theta_4096']:.2f}){need}")
        return L

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


def compare_runs(ref_records, cand_records, alpha: float = DEFAULT_ALPHA, min_effect: float = DEFAULT_MIN_EFFECT,
                 noise=None, *, kl_tolerance: float = DEFAULT_KL_TOLERANCE,
                 kl_exceed_rate: float = DEFAULT_KL_EXCEED_RATE, near_tie_margin: float = NEAR_TIE_MARGIN,
                 ref_status: str | None = None, cand_status: str | None = None, labels: tuple[str, str] | None = None,
                 n_boot: int = 2000, seed: int = 0, trtllm_sigma: float = 50.0, trtllm_beta: float = 0.2,
                 on_invalid: str = "raise") -> Comparison:
    """Compare a candidate run against the reference run (see the module docstring).

    ref_records / cand_records: lists of records (harness.evaluation.records), or EvalResult-like objects /
    dicts with ``status`` and ``records``. ref_status / cand_status override the status
    ("ok" | "unresolved"). on_invalid: "raise" (PairingError) or "unresolved" when prompts differ.
    """
    stats._check_alpha(alpha)
    if min_effect < 0 or not math.isfinite(min_effect):
        raise HarnessError(f"min_effect must be a non-negative number of accuracy points, got {min_effect!r}")
    if not (isinstance(kl_tolerance, (int, float)) and kl_tolerance >= 0 and math.isfinite(kl_tolerance)):
        raise HarnessError(f"kl_tolerance must be a non-negative number of nats, got {kl_tolerance!r}; pass e.g. "
                           f"--kl-tolerance {DEFAULT_KL_TOLERANCE}")
    if not (isinstance(kl_exceed_rate, (int, float)) and 0 <= kl_exceed_rate < 1):
        raise HarnessError(f"kl_exceed_rate must be in [0, 1), got {kl_exceed_rate!r}; pass e.g. --kl-exceed-rate "
                           f"{DEFAULT_KL_EXCEED_RATE}")
    if on_invalid not in ("raise", "unresolved"):
        raise HarnessError(f"on_invalid must be 'raise' or 'unresolved', got {on_invalid!r}")
    labels = labels or ("reference", "candidate")
    params = {"alpha": alpha, "min_effect": min_effect, "kl_tolerance": kl_tolerance,
              "kl_exceed_rate": kl_exceed_rate, "near_tie_margin": near_tie_margin, "n_boot": n_boot, "seed": seed}
    lab = {"ref": labels[0], "cand": labels[1]}

    ref, rs, re_ = _unpack(ref_records)
    cand, cs, ce = _unpack(cand_records)
    rs, cs = ref_status or rs or "ok", cand_status or cs or "ok"
    reasons = []
    for name, st, err, recs in (("reference", rs, re_, ref), ("candidate", cs, ce, cand)):
        if st != "ok":
            reasons.append(f"the {name} run is {st}" + (f": {err}" if err else ""))
        elif not recs:
            reasons.append(f"the {name} run has no records")
    if reasons:
        return Comparison("unresolved", reasons=reasons, labels=lab, params=params)

    pairing: Pairing = pair_records(ref, cand)
    if not pairing.valid:
        if on_invalid == "raise":
            raise PairingError(pairing)
        return Comparison("unresolved", reasons=["comparison invalid: " + p for p in pairing.problems()],
                          labels=lab, pairing=pairing.summary(), params=params)
    pairs = pairing.pairs
    n = len(pairs)
    cr = [bool(r.get("correct")) for r, _ in pairs]
    cc = [bool(c.get("correct")) for _, c in pairs]
    kr, kc = sum(cr), sum(cc)
    acc_r, acc_c = 100.0 * kr / n, 100.0 * kc / n
    diff = acc_c - acc_r
    wr = stats.wilson_interval(kr, n, alpha)
    wc = stats.wilson_interval(kc, n, alpha)
    b, c = stats.discordant_counts(cr, cc)
    mcn = stats.mcnemar_exact(b, c)
    boot = stats.paired_bootstrap_diff(cr, cc, n_boot=n_boot, seed=seed, alpha=alpha)
    accuracy = {"ref_points": acc_r, "cand_points": acc_c, "diff_points": diff, "ref_correct": kr,
                "cand_correct": kc, "ref_ci": [100 * wr[0], 100 * wr[1]], "cand_ci": [100 * wc[0], 100 * wc[1]]}

    theta = stats.trtllm_theta(n, trtllm_sigma, 0.05, trtllm_beta)
    thr = stats.trtllm_threshold(n, acc_r, trtllm_sigma, 0.05)
    trtllm = {"n": n, "alpha": 0.05, "beta": trtllm_beta, "sigma": trtllm_sigma, "theta": theta,
              "threshold": thr, "threshold_offset": thr - acc_r, "passes": acc_c >= thr,
              "theta_4096": stats.trtllm_theta(4096, trtllm_sigma, 0.05, trtllm_beta),
              "observed_effect": diff, "n_needed": stats.trtllm_samples_needed(abs(diff), trtllm_sigma, 0.05,
                                                                              trtllm_beta) if diff else None,
              "source": "tests/integration/defs/accuracy/accuracy_core.py compute_theta/compute_threshold"}

    divs, lps = compare_logprobs(pairs, near_tie_margin)
    kls = divergences_for_test(divs)
    lp_available = len(kls) > 0 and len(kls) >= 0.5 * n
    n_tests = 2 if lp_available else 1
    a_each = alpha / n_tests
    params.update({"alpha_per_test": a_each, "tests": n_tests})

    nf = NoiseFloor.from_any(noise)
    noise_d = nf.to_dict() if nf else {}

    # -- accuracy evidence ---------------------------------------------------------------------
    acc_call = None
    acc_sig = mcn.p_two_sided < a_each
    acc_dir = "regressed" if diff < 0 else "improved"
    acc_floor = nf.acc_floor() if nf else None
    acc_in_noise = acc_floor is not None and abs(diff) <= acc_floor
    notes_acc = []
    if acc_sig:
        if abs(diff) < min_effect:
            notes_acc.append(f"accuracy differs significantly (McNemar p {_p(mcn.p_two_sided)}) but by "
                             f"{diff:+.2f} points, below min effect {min_effect:g}")
        elif acc_in_noise:
            notes_acc.append(f"accuracy difference {diff:+.1f} points is within the A/A noise floor "
                             f"(+-{acc_floor:.1f})")
        else:
            acc_call = acc_dir

    # -- log-prob evidence ---------------------------------------------------------------------
    lp_call = None
    lp_test: dict[str, Any] = {"available": lp_available}
    notes_lp = []
    tol_eff = kl_tolerance
    tol_src = "the default; calibrate with --kl-tolerance or A/A repeats" if kl_tolerance == DEFAULT_KL_TOLERANCE \
        else "--kl-tolerance"
    unexplained = None
    if lp_available:
        if nf and nf.pooled_kl():
            q = nf.kl_quantile(1 - kl_exceed_rate)
            if q is not None and q > tol_eff:
                tol_eff, tol_src = q, f"A/A noise ({nf.n_runs} repeats, {100 * (1 - kl_exceed_rate):.0f}th percentile)"
        ex = stats.exceedance_test(kls, tol_eff, kl_exceed_rate)
        divergent = ex.p < a_each
        deltas = [d.delta_gold_prob for d in divs if d.usable and d.delta_gold_prob is not None]
        sf = stats.sign_flip_test(deltas, seed=seed)
        direction, dsrc = None, None
        if divergent:
            if sf.p_less < alpha and sf.mean < 0:
                direction, dsrc = "regressed", "right answer's probability"
            elif sf.p_greater < alpha and sf.mean > 0:
                direction, dsrc = "improved", "right answer's probability"
            elif mcn.p_regressed < alpha and diff < 0:
                direction, dsrc = "regressed", "accuracy (McNemar one-sided)"
            elif mcn.p_improved < alpha and diff > 0:
                direction, dsrc = "improved", "accuracy (McNemar one-sided)"
        aa_rate = nf.max_exceed_rate(tol_eff) if nf and nf.kl_runs else None
        lp_in_noise = aa_rate is not None and ex.rate <= aa_rate
        if divergent and lp_in_noise:
            notes_lp.append(f"log-prob exceedance rate {100 * ex.rate:.1f}% is within the A/A noise floor "
                            f"({100 * aa_rate:.1f}%)")
        elif divergent:
            lp_call = direction or "differs"
        unexplained = sum(1 for d, (r, cnd) in zip(divs, pairs)
                          if bool(r.get("correct")) != bool(cnd.get("correct")) and not (d.kl is not None and d.kl <= tol_eff))
        lp_test.update({**ex.to_dict(), "tolerance_source": tol_src, "divergent": divergent, "alpha": a_each,
                        "direction": direction, "direction_source": dsrc, "direction_test": sf.to_dict(),
                        "aa_max_exceed_rate": aa_rate, "unexplained_discordant": unexplained})

    # -- combine ----------------------------------------------------------------------------
    evidence, reasons = [], []
    calls = {x for x in (acc_call, lp_call) if x in ("regressed", "improved")}
    differs = lp_call is not None
    if acc_call:
        evidence.append("accuracy")
    if lp_call in ("regressed", "improved"):
        evidence.append("log-probs")
    if len(calls) == 2:
        verdict = "inconclusive"
        reasons.append(f"accuracy says {acc_call} but the log-probs say {lp_call}")
    elif calls:
        verdict = calls.pop()
        if acc_call:
            reasons.append(f"accuracy {diff:+.1f} points, McNemar p {_p(mcn.p_two_sided)} < {a_each:g}")
        if lp_call in ("regressed", "improved"):
            reasons.append(f"{lp_test['k']}/{lp_test['n']} samples diverge beyond {_g(tol_eff)} nats "
                           f"(p {_p(lp_test['p'])} < {a_each:g}); direction from the {lp_test['direction_source']}")
    elif lp_call == "differs":
        verdict = "inconclusive"
        reasons.append(f"log-probs differ ({lp_test['k']}/{lp_test['n']} samples beyond {_g(tol_eff)} nats, "
                       f"p {_p(lp_test['p'])}) but neither the right answer's probability nor accuracy shows a direction")
    elif notes_acc or notes_lp:
        verdict = "inconclusive"
        reasons += notes_acc + notes_lp
        # a significant effect below min_effect whose whole CI sits inside +-min_effect is practically the same
        if not notes_lp and not acc_in_noise and 100 * boot.lo > -min_effect and 100 * boot.hi < min_effect \
                and not (lp_available and lp_test.get("divergent")):
            verdict = "same"
    else:
        verdict, why = _same_or_inconclusive(lp_available, lp_test, acc_sig, diff, min_effect, boot,
                                             unexplained, kl_exceed_rate)
        reasons.append(why)
    if verdict in ("regressed", "improved") and notes_acc + notes_lp:
        reasons += notes_acc + notes_lp

    flips = []
    for d, (r, cnd) in zip(divs, pairs):
        if bool(r.get("correct")) != bool(cnd.get("correct")) or d.agree is False:
            flips.append({"id": d.id, "subject": r.get("subject"), "reference": r.get("reference"),
                          "ref_output": r.get("output"), "cand_output": cnd.get("output"),
                          "ref_correct": bool(r.get("correct")), "cand_correct": bool(cnd.get("correct")),
                          "kl": d.kl, "ref_margin": d.ref_margin, "delta_gold": d.delta_gold,
                          "delta_gold_prob": d.delta_gold_prob,
                          "near_tie": d.ref_margin is not None and d.ref_margin < near_tie_margin})
    flips.sort(key=lambda f: -(f["kl"] if _finite(f["kl"]) else (1e9 if f["kl"] is not None else -1)))

    max_len = max((len(r.get("token_ids") or []) for pr_ in pairs for r in pr_), default=0)
    generation = {"is_generation": max_len > 2 or not lp_available, "max_generated_tokens": max_len,
                  "n_compared": lps.n_token_compared, "n_diverged": lps.n_diverged, "n_prefill": lps.n_prefill,
                  "n_decode": lps.n_decode, "first_divergence_median": lps.first_divergence_median}
    return Comparison(verdict=verdict, reasons=reasons, evidence=evidence, differs=differs, n=n, labels=lab,
                      pairing=pairing.summary(), accuracy=accuracy, mcnemar=mcn.to_dict(), bootstrap=boot.to_dict(),
                      trtllm=trtllm, logprob=lps.to_dict(), logprob_test=lp_test, generation=generation,
                      noise=noise_d, params=params, flips=flips[:20], flips_total=len(flips), per_sample=divs)


def _same_or_inconclusive(lp_available, lp_test, acc_sig, diff, min_effect, boot, unexplained, rate):
    if acc_sig:
        return "inconclusive", "accuracy differs but no call could be made"
    if lp_available:
        if lp_test["rate"] > rate:
            return "inconclusive", (f"{lp_test['k']}/{lp_test['n']} samples beyond the KL tolerance: more than noise "
                                    f"should give ({100 * rate:.0f}%) but not significantly so at this n")
        if abs(diff) >= min_effect and unexplained:
            return "inconclusive", (f"accuracy {diff:+.1f} points with {unexplained} discordant samples whose KL is "
                                    f"beyond tolerance, not significant at this n")
        return "same", (f"log-probs within tolerance on {lp_test['n'] - lp_test['k']}/{lp_test['n']} samples and "
                        f"accuracy {diff:+.1f} points (McNemar not significant)")
    lo, hi = 100 * boot.lo, 100 * boot.hi
    if lo > -min_effect and hi < min_effect or (lo == hi == 0):
        return "same", f"paired CI [{lo:+.1f}, {hi:+.1f}] points lies within +-{min_effect:g} (no log-probs to compare)"
    return "inconclusive", (f"no significant difference, but the paired CI [{lo:+.1f}, {hi:+.1f}] points does not rule "
                            f"out an effect of {min_effect:g} points (no log-probs to compare)")
