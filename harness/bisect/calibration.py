"""The engine pair's measured noise, and how the run's decisions ended (docs/method.md, "Statistics").

Two engines never agree bit for bit, so how far apart they are on a config that does not regress
is a measurement of the pair, not an assumption: the first reference-like comparison of the run
(the full config when Phase 1 finds no regression, else the minimal config of Phase 3) gives the
per-sample letter-KL quantiles, the top-1 agreement, the spread of the expected-accuracy change and
the accuracy discordance. Its 95th-percentile KL becomes the tolerance of the KL diagnostic (never
below the 0.01-nat default), so "differs" and the Phase 2 classifier read divergence against this
engine pair's own noise. A/A repeats (--aa-repeats) measure the reference's own run-to-run noise
on top, for engines that are not deterministic.

``decision_counts`` tallies the trail's verdicts (how many decisions ended inconclusive, escalated
or untestable) and the search's family-wise error bound.
"""
from __future__ import annotations

from harness.comparison.verdict import DEFAULT_KL_TOLERANCE

KL_QUANTILE = "kl_p95"


def calibration_of(comp: dict, step, source: str) -> dict:
    """The calibration record of one reference-like comparison (a Comparison.to_dict())."""
    logprob = comp.get("logprob") or {}
    test = comp.get("logprob_test") or {}
    routes = comp.get("routes") or {}
    kl_p95 = logprob.get(KL_QUANTILE)
    tolerance = max(DEFAULT_KL_TOLERANCE, kl_p95) if isinstance(kl_p95, (int, float)) else None
    mcnemar = comp.get("mcnemar") or {}
    n = comp.get("n") or 0
    return {
        "source": source, "step": step.index, "n": n,
        "kl_p95": kl_p95, "kl_max": logprob.get("kl_max"),
        "share_beyond_default_tolerance": (test.get("k") / test.get("n")) if test.get("n") else None,
        "top1_agreement": logprob.get("top1_agreement"),
        "expected_accuracy_sd_points": (routes.get("expected_accuracy") or {}).get("sd_points"),
        "expected_accuracy_change_points": (routes.get("expected_accuracy") or {}).get("estimate_points"),
        "accuracy_discordance": (mcnemar.get("discordant") / n) if n and mcnemar else None,
        "kl_tolerance": tolerance,
        "kl_tolerance_source": f"calibrated: 95th-percentile letter KL of {source} (step {step.index})"
        if tolerance is not None else None,
    }


def decision_counts(trail, search_alpha: float) -> dict:
    """Verdicts of the judged steps, escalations, and the search's family-wise error bound."""
    judged = [s for s in trail if s.verdict is not None and s.phase != "ref"]
    counts: dict[str, int] = {}
    for s in judged:
        counts[s.verdict] = counts.get(s.verdict, 0) + 1
    # distinct configurations the search decided on (a configuration judged twice is one decision; the
    # same on a rerun from the store)
    search = {(s.config_hash, s.samples) for s in judged if s.phase in ("3", "search")}
    return {"judged": len(judged), "verdicts": counts, "escalated": sum(1 for s in judged if s.escalated_to),
            "untestable": sum(1 for s in judged if s.outcome == "untestable"),
            "search_decisions": len(search), "search_alpha": search_alpha,
            "search_family_wise_error_bound": min(1.0, len(search) * search_alpha),
            "search_family_wise_error_of": "false regression calls (equivalence decisions are at alpha each)"}
