"""Phase 6: confirm the search's culprits on fresh prompts (docs/method.md, "Phase 6").

The search judged every probe against the same reference run on the same prompts, so its errors
are correlated and re-reading its own verdicts confirms nothing: at a 5% per-probe false-fail rate
about a fifth of such "confirmed" culprits are wrong. So Phase 6 draws a *fresh* prompt set from
the same data set, disjoint from every prompt the search saw (``fresh_pool``), evaluates the
reference on it, and re-judges there:

* minimal plus the culprits must regress (the culprit is real, not a probe's false fail);
* the full config minus the culprits must not regress (they explain the regression); it is
  reported as *equivalent* when its equivalence test passes, else with its interval;
* with several culprit groups, each group alone from minimal must regress too;
* for an interaction (a group that regresses only together), no member alone may regress.

A culprit is confirmed only when all of that holds on the fresh prompts. When the data set has no
prompts left that the search did not use, the confirmation falls back to the search's prompts and
says so.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Callable

from harness.bisect.context import BisectContext
from harness.bisect.oracle import Oracle
from harness.bisect.search import SearchResult
from harness.bisect.state import BisectState


@dataclass
class Confirmation:
    """What Phase 6 found: each check's judged step, and whether every culprit is confirmed."""

    down: object  # full minus every culprit
    up: object  # minimal plus every culprit
    per_group: list[dict]
    members_alone: list[dict]
    confirmed: bool


def judge_confirmation(groups: list[list[str]], knobs: list[str], requires: dict, judge: Callable) -> Confirmation:
    """Phase 6's checks through ``judge(on, purpose) -> step`` (a step has ``verdict``, ``index`` and
    ``comparison``): the bisect's judge evaluates on fresh prompts, the search benchmark's is
    synthetic; this decision logic is shared by both. ``on`` are the knobs at their full value, every
    other at its minimal value. The culprit groups are left unchanged; ``Confirmation.confirmed``
    says whether all of them hold."""
    allc = [n for g in groups for n in g]
    gone = set(allc)
    remaining = tuple(n for n in knobs if n not in gone and not (set(requires.get(n, ())) & gone))
    per_group = [{"knobs": g, **_brief(judge(tuple(g), f"minimal + {', '.join(g)}"))} for g in groups] \
        if len(groups) > 1 else []
    members = [{"knob": n, "group": g, **_brief(judge((n,), f"minimal + {n} alone (pair member)"))}
               for g in groups if len(g) > 1 for n in g]
    down = judge(remaining, f"full - {', '.join(allc)}")
    up = judge(tuple(allc), f"minimal + {', '.join(allc)}")
    groups_ok = all(p["verdict"] == "regressed" for p in per_group)
    members_ok = not any(m["regressed"] for m in members)
    return Confirmation(down, up, per_group, members, _regressed(up) and _not_regressed(down) and groups_ok
                        and members_ok)


def planned_checks(groups: list[list[str]], knobs: list[str], requires: dict) -> list[tuple[tuple, str]]:
    """The (on, purpose) of every check ``judge_confirmation`` makes, in its order (none depends on
    another's verdict), so they can be evaluated together first."""
    class _Planned:
        index, verdict, comparison = None, "regressed", None

    checks: list[tuple[tuple, str]] = []
    judge_confirmation(groups, knobs, requires, lambda on, purpose: checks.append((tuple(on), purpose)) or _Planned)
    return checks


def _brief(step) -> dict:
    return {"step": getattr(step, "index", None), "verdict": step.verdict, "regressed": _regressed(step)}


def confirm_culprits(ctx: BisectContext, state: BisectState, res: SearchResult | None) -> None:
    if res is None or not res.culprits:
        sus = f" (untestable suspects: {', '.join(res.suspects)})" if res and res.suspects else ""
        state.conclude("unexplained", "the search found no culprit although the full config regresses and "
                       "minimal does not" + sus)
        state.phases["6"] = {"ran": False}
        return
    ctx.phase("phase 6: confirm on fresh prompts")
    oracle, fresh = fresh_oracle(ctx)
    where = " (fresh prompts)" if fresh.get("fresh") else ""

    def judge(on, purpose):
        closed = ctx.plan.closure(on)
        base = "full" if purpose.startswith("full") else "minimal"
        return ctx.judge(ctx.plan.config(ctx.user, closed), "6", purpose + where, on=closed, base=base, oracle=oracle)

    # the checks do not depend on each other's verdicts: with parallel evaluations, evaluate them together
    checks = planned_checks(res.culprits, list(ctx.plan.knob_names), ctx.plan.requires)
    ctx.prefetch([(ctx.plan.config(ctx.user, ctx.plan.closure(on)), f"6: {p}{where}") for on, p in checks], oracle)
    found = judge_confirmation(res.culprits, list(ctx.plan.knob_names), ctx.plan.requires, judge)
    _mark_confirmed(state.culprits, res.culprits, found)
    state.phases["6"] = {"ran": True, "confirmed": found.confirmed, "prompts": fresh,
                         "full_minus_culprits": _step_record(found.down), "minimal_plus_culprits": _step_record(found.up),
                         "per_group": found.per_group, "members_alone": found.members_alone}
    state.conclude("culprit" if found.confirmed else "unconfirmed",
                   _headline(res.culprits, found.confirmed, found.down, found.up, found.members_alone, fresh))


# -- the fresh prompt set ------------------------------------------------------------------------
def fresh_pool(ctx: BisectContext) -> tuple[list[str], int]:
    """(ids the search never saw, subject by subject in a seeded random order, interleaved so any
    prefix is balanced across subjects; how many ids the search used)."""
    from harness.evaluation.spec import build_samples

    used = {r["id"] for res in ctx.oracle._refs.values() if res is not None for r in res.records or []}
    _, everything = build_samples(replace(ctx.ref_spec, samples=None, sample_ids=None))
    rng = random.Random(f"phase6-{ctx.inp.seed}")
    by_subject: dict[str, list[str]] = {}
    for s in everything:
        if s.id not in used:
            by_subject.setdefault(s.subject, []).append(s.id)
    columns = [rng.sample(ids, len(ids)) for _, ids in sorted(by_subject.items())]
    pool = [col[i] for i in range(max((len(c) for c in columns), default=0)) for col in columns if i < len(col)]
    return pool, len(used)


def fresh_oracle(ctx: BisectContext) -> tuple[Oracle, dict]:
    """An oracle whose reference runs on the fresh pool (the search's own oracle when none is left)."""
    n = ctx.inp.samples
    pool, used = fresh_pool(ctx) if n else ([], 0)
    if not n or len(pool) < min(n, 20):
        return ctx.oracle, {"fresh": False, "n": n, "search_prompts": used, "pool": len(pool),
                            "note": "no fresh prompts left in the data set: confirmed on the search's prompts"}
    ref_spec = replace(ctx.ref_spec, samples=min(n, len(pool)), sample_ids=pool,
                       label=f"{ctx.ref_spec.label} (fresh prompts)")
    oracle = Oracle(ctx.runner, ref_spec, ctx.compare, available=lambda: len(pool))
    oracle.steps = ctx.oracle.steps  # one trail: the fresh steps are recorded with the others
    return oracle, {"fresh": True, "n": min(n, len(pool)), "search_prompts": used, "pool": len(pool)}


# -- the checks --------------------------------------------------------------------------------
def _regressed(step) -> bool:
    return step.verdict == "regressed"


def _not_regressed(step) -> bool:
    """Same or better, or undecided with no evidence route calling a regression."""
    if step.verdict in ("same", "improved"):
        return True
    routes = (step.comparison or {}).get("routes") or {}
    return step.verdict == "inconclusive" and not any(r.get("call") == "regressed" for r in routes.values())


def _step_record(step) -> dict:
    """The step's verdict with its primary route's estimate and interval (the call's interval for a
    regression or improvement, the equivalence interval otherwise)."""
    primary = (step.comparison or {}).get("primary")
    route = ((step.comparison or {}).get("routes") or {}).get(primary) or {}
    called = step.verdict in ("regressed", "improved")
    return {"step": step.index, "verdict": step.verdict, "score": step.score, "n": step.n,
            "estimate_points": route.get("estimate_points"),
            "interval_points": route.get("call_interval_points" if called else "interval_points"), "route": primary}


def _mark_confirmed(culprits: list[dict], groups: list[list[str]], found: Confirmation) -> None:
    """Set each culprit's "confirmed" (and an interaction's "members_alone")."""
    both_ways = _regressed(found.up) and _not_regressed(found.down)
    for c, g in zip(culprits, groups):
        pg = next((p for p in found.per_group if p["knobs"] == g), None)
        members_ok = not any(a["regressed"] for a in found.members_alone if a["group"] == g)
        c["confirmed"] = both_ways and (pg is None or pg["verdict"] == "regressed") and members_ok
        if len(g) > 1:
            c["members_alone"] = {a["knob"]: a["verdict"] for a in found.members_alone if a["group"] == g}


def _recovery_words(down) -> str:
    rec = _step_record(down)
    if down.verdict in ("same", "improved"):
        return f"full minus it is {down.verdict}"
    lo, hi = rec["interval_points"] or (None, None)
    interval = f", interval [{lo:+.1f}, {hi:+.1f}]" if lo is not None else ""
    est = rec["estimate_points"]
    return f"full minus it shows no regression ({'-' if est is None else f'{est:+.1f}'} points{interval})"


def _where(fresh: dict, down, up) -> str:
    """Which prompts Phase 6 judged on: the fresh set's size, or the largest count a check escalated to."""
    if not fresh.get("fresh"):
        return "on the search's own prompts"
    most = max([fresh["n"]] + [getattr(s, "escalated_to", None) or 0 for s in (down, up) if s is not None])
    return f"on {fresh['n']} fresh prompts" if most <= fresh["n"] else f"on {fresh['n']}-{most} fresh prompts"


def _headline(groups: list[list[str]], confirmed: bool, down, up, alone: list[dict], fresh: dict) -> str:
    names = " + ".join(", ".join(g) + (" (only together)" if len(g) > 1 else "") for g in groups)
    where = _where(fresh, down, up)
    if confirmed:
        return f"culprit: {names} - confirmed {where} (minimal plus it regresses; {_recovery_words(down)})"
    bad_alone = [a["knob"] for a in alone if a["regressed"]]
    return (f"suspect: {names} - NOT confirmed {where} (full minus it: {down.verdict}; minimal plus it: "
            f"{up.verdict}" + (f"; regresses alone too: {', '.join(bad_alone)}" if bad_alone else "") + ")")
