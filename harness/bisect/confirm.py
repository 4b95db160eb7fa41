"""Phase 6: confirm the search's culprits both ways (docs/method.md, "Phase 6").

The full config minus the culprits must recover and the minimal config plus the culprits must
regress. With several culprit groups, each group alone from minimal must regress too; for an
interaction (a group that regresses only together), each member alone must *not* regress.
A culprit is confirmed only when all of that holds.
"""
from __future__ import annotations

from harness.bisect.context import BisectContext
from harness.bisect.search import FAIL, PASS, SearchResult
from harness.bisect.state import BisectState


def confirm_culprits(ctx: BisectContext, state: BisectState, res: SearchResult | None) -> None:
    if res is None or not res.culprits:
        sus = f" (untestable suspects: {', '.join(res.suspects)})" if res and res.suspects else ""
        state.conclude("unexplained", "the search found no culprit although the full config regresses and "
                       "minimal does not" + sus)
        state.phases["6"] = {"ran": False}
        return
    ctx.phase("phase 6: confirm both ways")
    per_group = _each_group(ctx, res.culprits)
    alone = _interaction_members(ctx, res.culprits)
    down, up = _both_ways(ctx, [n for g in res.culprits for n in g])
    confirmed = _mark_confirmed(state.culprits, res.culprits, down.outcome == PASS and up.outcome == FAIL,
                                per_group, alone)
    state.phases["6"] = {"ran": True, "confirmed": confirmed,
                         "full_minus_culprits": {"step": down.index, "verdict": down.verdict, "score": down.score},
                         "minimal_plus_culprits": {"step": up.index, "verdict": up.verdict, "score": up.score},
                         "per_group": per_group, "members_alone": alone}
    state.conclude("culprit" if confirmed else "unconfirmed", _headline(res.culprits, confirmed, down, up, alone))


def _each_group(ctx: BisectContext, groups: list[list[str]]) -> list[dict]:
    """Several culprit groups: minimal plus each group alone must regress."""
    plan, out = ctx.plan, []
    if len(groups) > 1:
        for g in groups:
            s = ctx.judge(plan.config(ctx.user, plan.closure(g)), "6", f"minimal + {', '.join(g)}",
                          on=plan.closure(g), base="minimal")
            out.append({"knobs": g, "step": s.index, "verdict": s.verdict})
    return out


def _interaction_members(ctx: BisectContext, groups: list[list[str]]) -> list[dict]:
    """An interaction: each member alone from minimal must NOT regress."""
    plan, out = ctx.plan, []
    for g in groups:
        if len(g) > 1:
            for n in g:
                on = plan.closure([n])
                st = ctx.judge(plan.config(ctx.user, on), "6", f"minimal + {n} alone (pair member)",
                               on=on, base="minimal")
                out.append({"knob": n, "group": g, "step": st.index, "verdict": st.verdict})
    return out


def _both_ways(ctx: BisectContext, allc: list[str]):
    """(full minus every culprit, minimal plus every culprit) as judged steps."""
    plan = ctx.plan
    rem = plan.without(allc)
    down = ctx.judge(plan.config(ctx.user, rem), "6", f"full - {', '.join(allc)}", on=rem, base="full")
    up_on = plan.closure(allc)
    up = ctx.judge(plan.config(ctx.user, up_on), "6", f"minimal + {', '.join(allc)}", on=up_on, base="minimal")
    return down, up


def _mark_confirmed(culprits: list[dict], groups: list[list[str]], both_ways: bool, per_group: list[dict],
                    alone: list[dict]) -> bool:
    """Set each culprit's "confirmed" (and an interaction's "members_alone"); True when all are."""
    for c, g in zip(culprits, groups):
        pg = next((p for p in per_group if p["knobs"] == g), None)
        members_pass = all(a["verdict"] in ("same", "improved") for a in alone if a["group"] == g)
        c["confirmed"] = both_ways and (pg is None or pg["verdict"] == "regressed") and members_pass
        if len(g) > 1:
            c["members_alone"] = {a["knob"]: a["verdict"] for a in alone if a["group"] == g}
    return all(c["confirmed"] for c in culprits)


def _headline(groups: list[list[str]], confirmed: bool, down, up, alone: list[dict]) -> str:
    names = " + ".join(", ".join(g) + (" (only together)" if len(g) > 1 else "") for g in groups)
    if confirmed:
        return f"culprit: {names} - confirmed both ways (full minus it recovers, minimal plus it regresses)"
    bad_alone = [a["knob"] for a in alone if a["verdict"] not in ("same", "improved")]
    return (f"suspect: {names} - NOT confirmed (full minus it: {down.verdict}; minimal plus it: "
            f"{up.verdict}" + (f"; regresses alone too: {', '.join(bad_alone)}" if bad_alone else "") + ")")
