"""Phases 1-2: the full candidate config against the reference, and the pattern of its errors.

Phase 1 is the paired verdict of the full config (docs/method.md, "Phase 1"; "Statistics"); its
two runs become the decisive comparison the report and Phase 5 use. Phase 2 labels the
candidate's errors (``harness.analysis.classify``; docs/method.md, "Phase 2"). Anything but
``regressed`` ends the search: the verdict is the outcome.
"""
from __future__ import annotations

from dataclasses import replace

from harness.bisect.context import BisectContext
from harness.bisect.state import BisectState


def compare_full_config(ctx: BisectContext, state: BisectState) -> str:
    """Phases 1-2; returns Phase 1's verdict."""
    ctx.phase("phase 1-2: candidate vs reference")
    step = ctx.judge(ctx.user, "1", "full candidate config", base="full", result=ctx.full_run)
    ctx.calibrate_from(step, "the full config vs the reference (Phase 1)")
    state.specs["candidate"] = ctx.cand_spec(ctx.user, "1: full candidate config", samples=step.escalated_to)
    res = ctx.oracle.result_of(step)
    if res is not None and res.status == "ok":
        state.results["candidate"] = res
    if step.escalated_to:
        state.results["reference"] = ctx.oracle._refs.get(step.escalated_to, state.results["reference"])
        state.specs["reference"] = replace(ctx.ref_spec, samples=step.escalated_to)
    state.phases["1"] = {"step": step.index, "verdict": step.verdict, "score_ref": step.ref_score,
                         "score_cand": step.score, "n": step.n, "escalated_to": step.escalated_to,
                         "comparison": step.comparison, "summary": step.summary}
    state.phases["2"] = classify(ctx, state)
    v = step.verdict
    if v != "regressed":
        state.conclude(v, _headline(ctx, step))
    return v


def _headline(ctx: BisectContext, step) -> str:
    backend, ref = ctx.inp.backend, ctx.inp.backend_ref
    return {
        "same": f"no regression: {backend} matches {ref} on {step.n} paired samples",
        "improved": f"{backend} scores better than {ref}",
        "inconclusive": f"inconclusive on {step.n} paired samples: not enough evidence either way",
        "unresolved": f"the candidate config crashed or hung twice: {step.error}",
    }.get(step.verdict, step.verdict)


def classify(ctx: BisectContext, state: BisectState) -> dict:
    """Phase 2: the label of the candidate's errors against the reference's (never fails the run)."""
    ref, cand = state.results.get("reference"), state.results.get("candidate")
    if cand is None or cand.status != "ok":
        return {"label": None, "note": "no candidate records"}
    fn = ctx.classify_fn
    if fn is None:
        try:
            from harness.analysis.classify import classify as fn
        except ImportError:
            return {"label": None, "note": "harness.analysis.classify not available"}
    ref_records = ref.records if ref is not None else None
    try:
        try:
            c = fn(cand.records, reference_records=ref_records, task=ctx.inp.task)
        except TypeError:  # a classify without the task keyword
            c = fn(cand.records, reference_records=ref_records)
    except Exception as exc:  # noqa: BLE001 - a label is a nicety; never lose the bisect over it
        return {"label": None, "note": f"classification failed: {type(exc).__name__}: {exc}"}
    d = c.to_dict() if hasattr(c, "to_dict") else dict(vars(c))
    return {"label": d.get("label"), "evidence": d.get("evidence"), "next_step": d.get("next_step"),
            "detail": d}
