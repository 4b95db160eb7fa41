"""Phase 4c: world_size > 1 (docs/method.md, Phase 4c).

The full config on a world-size ladder (1, 2, N) tells a structural sharding bug from a
divisibility one or from no sharding effect at all (``interpret_ladder``); where a transform has
an allreduce_strategy other than NCCL, the config with NCCL everywhere tests the all-reduce
strategy (``interpret_nccl``).
"""
from __future__ import annotations

from harness.bisect.context import BisectContext
from harness.bisect.plan import allreduce_transforms
from harness.bisect.state import BisectState
from harness.config import deep_merge


def check_world_size(ctx: BisectContext, state: BisectState) -> None:
    ws = ctx.plan.world_size
    ladder = [w for w in (1, 2) if w < ws] + [ws]
    ar = allreduce_transforms(ctx.full)
    nccl_applicable = any(v != "NCCL" for v in ar.values())
    ctx.phase("phase 4c: world size")
    verdicts, steps = {}, {}
    for w in ladder:
        cfg = ctx.user if w == ws else deep_merge(ctx.user, {"world_size": w})
        s = ctx.judge(cfg, "4c", f"full config at world_size {w}", base="full")
        verdicts[w], steps[str(w)] = s.verdict, s.index
    out = {"ladder_steps": steps, **interpret_ladder(verdicts, ws)}
    if nccl_applicable:
        over = {"transforms": {n: {"allreduce_strategy": "NCCL"} for n, v in ar.items() if v != "NCCL"}}
        s = ctx.judge(deep_merge(ctx.user, over), "4c", "allreduce_strategy: NCCL", base="full")
        out["nccl"] = {"step": s.index, **interpret_nccl(s.verdict, True, ar)}
    else:
        out["nccl"] = interpret_nccl(None, False, ar)
    state.phases["4c"] = out


def interpret_ladder(verdicts: dict[int, str], full_ws: int) -> dict:
    """World-size ladder {ws: verdict} -> finding (docs/method.md, Phase 4c)."""
    ok = {w for w, v in verdicts.items() if v in ("same", "improved")}
    bad = {w for w, v in verdicts.items() if v == "regressed"}
    unknown = sorted(w for w in verdicts if w not in ok and w not in bad)
    above = sorted(w for w in verdicts if w > 1)
    if 1 in bad:
        kind, text = "not_sharding", ("fails at world_size 1 too: sharding is not the cause; go back to Phase 3 "
                                      "isolation at world_size 1")
    elif 1 not in ok or unknown:
        kind, text = "unclear", "the ladder does not separate the cases (some steps untestable)"
    elif not bad:
        kind, text = "no_sharding_effect", "the same at every world size tried: sharding is not the cause"
    elif len(above) >= 2 and all(w in bad for w in above):
        kind, text = "structural", ("correct at world_size 1, wrong at every world_size > 1: a structural sharding "
                                    "bug (missing or doubled all-reduce, wrong split point, wrong stride after TP)")
    elif bad == {full_ws} and len(above) >= 2:
        kind, text = "divisibility", (f"correct up to world_size {max(w for w in ok)}, wrong only at {full_ws}: "
                                      "likely a head-count divisibility assumption (heads not divisible by the TP "
                                      "degree)")
    elif bad == {full_ws}:
        kind, text = "sharding", (f"correct at world_size 1, wrong at {full_ws} (the only world_size > 1 tried): a "
                                  "sharding bug; structural and divisibility cannot be told apart with one step")
    else:
        kind, text = "unclear", "wrong at some world sizes > 1 but not at the largest: no pattern the method names"
    return {"kind": kind, "finding": text, "ladder": {str(w): v for w, v in sorted(verdicts.items())},
            "untestable": unknown}


def interpret_nccl(verdict: str | None, applicable: bool, current: dict) -> dict:
    if not applicable:
        return {"kind": "not_applicable", "finding": "allreduce_strategy is already NCCL in every transform that has "
                "it" if current else "no transform has an allreduce_strategy option", "verdict": None}
    if verdict in ("same", "improved"):
        return {"kind": "allreduce_strategy", "verdict": verdict, "finding": "allreduce_strategy: NCCL recovers: "
                "the all-reduce strategy is the bug (AUTO has caused correctness issues before)"}
    return {"kind": "not_allreduce", "verdict": verdict, "finding": f"allreduce_strategy: NCCL does not recover "
            f"({verdict}): the all-reduce strategy is not the cause"}
