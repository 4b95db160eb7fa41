"""Phase 3, isolation: strip the config to minimal, then search the knobs (docs/method.md, "Phase 3").

A minimal config that still regresses is a core-path bug (weight loading, attention, KV cache);
one that recovers means a stripped knob is responsible, and the search
(``harness.bisect.search``: adaptive group testing or linear, one knob at a time) finds which,
every probe a judged step of the trail. With parallel evaluations the adaptive search judges
several probes per round (``KnobSearch.width``) and each round's evaluations run together.
"""
from __future__ import annotations

from pathlib import Path

from harness.bisect.context import BisectContext
from harness.bisect.search import FAIL, PASS, SearchResult, run_search
from harness.bisect.state import BisectState


def prune_no_effect(ctx: BisectContext, state: BisectState) -> list[dict]:
    """Before the search: knobs whose transforms had nothing to do in the full candidate run (Phase 1's
    records, ``info["transforms"]``) leave the search (``Plan.prune_no_effect``); recorded in the state."""
    cand = state.results.get("candidate")
    if cand is None or cand.status != "ok":
        return []
    pruned = ctx.plan.prune_no_effect((cand.info or {}).get("transforms"))
    state.phases["prune"] = {"no_effect": pruned, "searched": ctx.plan.knob_names}
    if pruned:
        ctx.log(f"not searched (no effect on this model): {', '.join(d['name'] for d in pruned)}")
    return pruned


def prune_from_store(inp, plan) -> tuple[list[dict], str | None]:
    """``--dry-run``: prune with the full candidate run already in the evaluation store, if there is one
    (nothing is evaluated). Returns (the pruned knobs, the store key used or None)."""
    from harness.bisect.context import candidate_spec
    from harness.evaluation.key import eval_key
    from harness.evaluation.store import Store

    if not inp.use_cache or not Path(inp.cache_dir).is_dir():
        return [], None
    key = eval_key(candidate_spec(inp, inp.user_config, "1: full candidate config"))
    with Store(inp.cache_dir) as store:
        res = store.get(key)
    if res is None or res.status != "ok":
        return [], None
    return plan.prune_no_effect((res.info or {}).get("transforms")), key


def strip_to_minimal(ctx: BisectContext, state: BisectState) -> str:
    """Phase 3's first step; returns the minimal config's verdict."""
    ctx.phase("phase 3: strip to minimal")
    step = ctx.judge(ctx.minimal_user, "3", "minimal config (every strippable knob off)", on=[], base="full",
                     alpha=ctx.search_alpha)
    ctx.calibrate_from(step, "the minimal config vs the reference (Phase 3)")
    state.phases["3"] = {"step": step.index, "verdict": step.verdict, "score": step.score,
                         "stripped": [k.name for k in ctx.plan.togglable], "config": ctx.minimal_user,
                         "core_path_bug": step.verdict == "regressed"}
    return step.verdict


class KnobSearch:
    """The search's probe: a set of knobs switched on from minimal, judged once per run."""

    def __init__(self, ctx: BisectContext):
        self.ctx = ctx
        self.plan = ctx.plan
        self.memo: dict[tuple, str] = {}

    def probe(self, on, purpose: str) -> str:
        names = self.plan.closure(on)
        if names in self.memo:
            return self.memo[names]
        step = self.ctx.judge(self.plan.config(self.ctx.user, names), "search", purpose, on=names, base="auto",
                              alpha=self.ctx.search_alpha)
        self.memo[names] = step.outcome
        return step.outcome

    def probe_many(self, sets, purposes) -> list[str]:
        """Several probes of one round: with parallel evaluations, everything judging them needs (the
        candidates, the references, the escalations an inconclusive one predicts) is evaluated together
        first (``Oracle.prefetch``); the judging then goes in order, as with one evaluation at a time."""
        ctx, plan = self.ctx, self.plan
        new = [(plan.config(ctx.user, plan.closure(s)), f"search: {p}") for s, p in zip(sets, purposes)
               if plan.closure(s) not in self.memo]
        ctx.prefetch(new, alpha=ctx.search_alpha)
        return [self.probe(s, p) for s, p in zip(sets, purposes)]

    def width(self) -> int:
        """Probes judged at once: the evaluations that fit at once, halved, because judging a probe can
        need two at once (the candidate and the reference at an escalated sample count)."""
        runner = self.ctx.runner
        fit = runner.parallel_for(self.ctx.cand_spec(self.ctx.minimal_user, "search")) \
            if hasattr(runner, "parallel_for") else getattr(runner, "max_parallel", 1)
        return max(1, fit // 2)

    def run(self, state: BisectState) -> SearchResult:
        names = self.plan.knob_names
        self.ctx.phase(f"search ({self.plan.strategy}, {len(names)} knobs)")
        self.memo[self.plan.closure(())] = PASS  # Phase 3 established both
        self.memo[self.plan.closure(names)] = FAIL
        res = run_search(self.plan.strategy, names, self.probe, batch_oracle=self.probe_many,
                         requires=self.plan.requires, parallel=self.width())
        state.culprits = [describe_culprit(self.plan, g) for g in res.culprits]
        state.phases["search"] = {**res.to_dict(), "steps": [s.index for s in state.trail if s.phase == "search"]}
        return res


def search_knobs(ctx: BisectContext, state: BisectState) -> SearchResult:
    """Phase 3's search, from the minimal config (which passes) to the full one (which fails)."""
    return KnobSearch(ctx).run(state)


def describe_culprit(plan, group: list[str]) -> dict:
    """A culprit group as summary.json shows it ("confirmed" is filled by Phase 6)."""
    knobs = [plan.knob(n) for n in group]
    switched = [b for n in group for b in plan.bundles.get(n, [])]
    required = [r for n in group for r in plan.requires.get(n, []) if r not in group]
    return {"knobs": list(group), "kind": "interaction" if len(group) > 1 else "single",
            "categories": [k.category for k in knobs],
            "describe": [f"{k.name}={k.full} (minimal {k.minimal})" if k.kind != "transform"
                         else f"{k.name} ({k.category}, stage {k.stage})" for k in knobs],
            "with": required, "switches": switched, "confirmed": None}
