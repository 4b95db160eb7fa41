"""The core-path ladder: when the minimal config still regresses, try the installed alternatives one at a time.

The method stops at "the bug is in a core path (weight loading, attention, KV cache)" when the minimal
config regresses (docs/method.md, "Phase 3"). The kept transforms are still switchable by backend: the
attention kernel (``attn_backend``, i.e. ``insert_cached_attention.backend``), the KV-cache dtype and
the compile backend. The candidate backend offers its rungs (``Backend.core_alternatives``: the
alternatives its installed version registers, each a small overlay on the minimal config); the ladder
judges the minimal config with one rung switched, in the offered order (attention first), and stops at
the first that recovers: that rung names the core path the bug sits in. No rung recovering keeps the
plain core-path outcome: weights, the model definition, or something the ladder cannot switch.
"""
from __future__ import annotations

from harness.bisect.context import BisectContext
from harness.bisect.state import BisectState
from harness.config.ops import deep_merge

AXIS_WORDS = {"attn_backend": "attention backend", "kv_cache_dtype": "KV-cache dtype",
              "compile_backend": "compile backend"}


def ladder_rungs(backend, catalogue, minimal_user: dict) -> list[dict]:
    """The rungs ``backend`` offers for the minimal config (resolved against ``catalogue``)."""
    from harness.config import resolve

    offer = getattr(backend, "core_alternatives", None)
    return list(offer(resolve(catalogue, minimal_user))) if callable(offer) else []


def _purpose(rung: dict) -> str:
    return f"minimal config, {AXIS_WORDS.get(rung['axis'], rung['axis'])} {rung.get('from')} -> {rung['value']}"


def run_core_ladder(ctx: BisectContext, state: BisectState) -> dict | None:
    """Judge the minimal config with each rung switched until one recovers; record it in ``state``."""
    rungs = ctx.plan.ladder
    if not rungs:
        return None
    ctx.phase(f"core-path ladder ({len(rungs)} rungs at most)")
    rows, recovered = [], None
    for rung in rungs:
        step = ctx.judge(deep_merge(ctx.minimal_user, rung["config"]), "ladder", _purpose(rung), base="minimal")
        row = {"axis": rung["axis"], "from": rung.get("from"), "value": rung["value"], "step": step.index,
               "verdict": step.verdict, "score": step.score}
        rows.append(row)
        if step.verdict in ("same", "improved"):
            recovered = row
            break
    finding = _finding(recovered, rows)
    state.phases["ladder"] = {"rungs": rows, "recovered": recovered, "tried": len(rows), "offered": len(rungs),
                              "finding": finding}
    if recovered:
        state.conclude("core_path", f"core path: the minimal config regresses with {_words(recovered)} "
                       f"{recovered['from']} and recovers with {recovered['value']}: the bug is in the "
                       f"{recovered['from']} {_words(recovered)}")
    return recovered


def _words(row: dict) -> str:
    return AXIS_WORDS.get(row["axis"], row["axis"])


def _finding(recovered: dict | None, rows: list[dict]) -> str:
    if recovered is None:
        tried = ", ".join(f"{r['axis']}={r['value']} ({r['verdict']})" for r in rows)
        return (f"no alternative recovered ({tried}): the bug is in a path the ladder cannot switch (weight "
                "loading, the model definition, a kept transform): compare module by module against the reference")
    axis = recovered["axis"]
    where = {"attn_backend": "its attention kernel or the wrapper that calls it (method Phase 4b: compare every "
                             "constant with config.json, the softmax scale, the KV layout and strides)",
             "kv_cache_dtype": "the KV cache in that dtype (quantize/dequantize scales, cache layout)",
             "compile_backend": "that compile backend's lowering or graph capture"}.get(axis, "that component")
    return (f"{_words(recovered)} {recovered['from']} is the suspect: with {recovered['value']} the minimal config "
            f"recovers; look at {where}")
