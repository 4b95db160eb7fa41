"""Search strategies over knob sets: which knobs, switched on from the minimal config, regress.

Both strategies see the world through a *probe*: ``probe(on) -> "pass" | "fail" | "untestable"``
where ``on`` is the set of knobs at their full value (every other knob at its minimal value).
The probe is memoised, so a configuration is judged once per search; the trail of distinct
probes is what the report shows and what the benchmark counts.

Assumptions: the minimal config passes and the full config fails (Phase 3 established both), and
failure is monotone (switching more knobs on never hides a fault). Phase 6 confirms the answer
both ways, which catches a violated assumption.

``linear`` (docs/method.md, "Phase 3"): re-enable each knob alone from the minimal config, in
pipeline order, evaluating every knob (n probes, batched), so several independent culprits all
show (a knob that requires another, e.g. fuse_allreduce_* requiring world_size, is blamed only
when what it requires passes alone). If the full config minus the knobs that failed alone still fails,
some knobs fail only together: a cumulative pass (minimal + k1, + k2, ... until it fails) finds one member and a
pairing pass finds its partner.

``adaptive`` (default): group testing / delta debugging. ``_Adaptive.find(C, B)`` returns a minimal
subset S of C such that B+S fails, given that B passes and B+C fails (QuickXplain / ddmin's
binary split). It probes the first half C1: fail -> recurse into C1; pass -> *assume* the
culprit is in C2 and recurse without probing C2 (so one culprit costs ceil(log2 n) probes, plus
at most one for the final single knob, which doubles as Phase 6's "minimal + culprit
regresses"). When an assumption turns out wrong (a lone knob that should fail passes), the
nearest level probes C2 itself; if both halves pass, the knobs interact across the halves:
S1 = _find(C1, B + C2), S2 = _find(C2, B + S1) -> S1 + S2 (a pair that fails only together).
After each culprit group, the full config minus all groups found is probed (Phase 6's "full
minus culprits recovers"); if it still fails the search continues on what is left, so
independent culprits are all found. Cost: about ceil(log2 n) + 2 probes for one culprit,
d * (log2 n + 2) for d independent ones, about 4 log2 n for a pair.

An ``untestable`` probe (an evaluation that stayed unresolved after its retry, or stayed
inconclusive) is never read as a pass: the half it belongs to is probed the other way, and a
single knob whose own probe is untestable is reported as a suspect, not a culprit.

Parallel group testing (``adaptive`` with ``width`` w >= 2 probes in flight; w = 1 is the search
above, unchanged): a *round* is a batch of probes judged together, and rounds, not probes, set the
wall time. ``_Parallel.find(C, B)`` looks for the shortest prefix C[:i] with B + C[:i] failing (under
monotone failure its last knob belongs to a culprit group): w prefix lengths per round split the
candidates into w + 1 parts, so one culprit takes ceil(log_(w+1) n) rounds. The knob found is
verified alone, with the next "full - culprits" probe speculated in the same round; if it passes
alone, its partners are searched the same way among the knobs before it, with it switched on. A
prefix that is untestable is never read either way: when only untestable lengths are left between
the last passing and the first failing prefix, the one-at-a-time search decides among those knobs.
Evaluations grow with w (w per round instead of 1 per level): about w / log2(w + 1) times the
sequential count, plus the found knob's own check. At w = 3 that measured 1.52x the sequential count
(one culprit among 32 knobs), so w is capped at ``MAX_WIDTH`` = 2: at most 1.31x, and one culprit
among 64 knobs still takes <= 5 rounds (8 one at a time), within ceil(log_(k+1) 64) + 3 for every
k >= 2 (``scripts/bench_parallel.py`` measures rounds and evaluations; reports/bench_parallel.json).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

PASS, FAIL, UNTESTABLE = "pass", "fail", "untestable"
OUTCOMES = (PASS, FAIL, UNTESTABLE)
STRATEGIES = ("adaptive", "linear")
MAX_WIDTH = 2  # probes in flight per round: evaluations within +50% of the sequential search (docstring)


class SearchBudgetExceeded(Exception):
    """The search used up its evaluation budget (pathological non-monotone oracle)."""


class _Contradiction(Exception):
    """An unprobed assumption ('this half fails on its own') turned out false."""


@dataclass
class Probe:
    """One distinct configuration the search judged."""

    index: int
    on: tuple[str, ...]  # knobs at their full value, in pipeline order
    outcome: str
    purpose: str
    round: int = 0  # probes of the same round were judged together

    def to_dict(self) -> dict:
        return {"index": self.index, "on": list(self.on), "outcome": self.outcome, "purpose": self.purpose,
                "round": self.round}


@dataclass
class SearchResult:
    strategy: str
    knobs: list[str]
    culprits: list[list[str]] = field(default_factory=list)  # groups: [a] alone, [a, b] only together
    suspects: list[str] = field(default_factory=list)  # knobs whose own probe was untestable
    explained: bool | None = None  # full minus culprits passes (None: could not tell)
    probes: list[Probe] = field(default_factory=list)
    budget_exhausted: bool = False
    width: int = 1  # probes in flight per round

    @property
    def evaluations(self) -> int:
        return len(self.probes)

    @property
    def rounds(self) -> int:
        return max((p.round for p in self.probes), default=0)

    def culprit_knobs(self) -> list[str]:
        seen: list[str] = []
        for g in self.culprits:
            seen += [k for k in g if k not in seen]
        return seen

    def to_dict(self) -> dict:
        return {
            "strategy": self.strategy, "knobs": list(self.knobs), "culprits": [list(g) for g in self.culprits],
            "suspects": list(self.suspects), "explained": self.explained, "evaluations": self.evaluations,
            "budget_exhausted": self.budget_exhausted, "width": self.width, "rounds": self.rounds,
            "probes": [p.to_dict() for p in self.probes],
        }


class Prober:
    """Memoising wrapper around the oracle; keeps knob sets in pipeline order."""

    def __init__(self, knobs: Sequence[str], oracle: Callable[[tuple[str, ...], str], str],
                 batch_oracle: Callable[[list[tuple[str, ...]], list[str]], list[str]] | None = None,
                 budget: int | None = None, known: dict[frozenset, str] | None = None):
        self.knobs = list(knobs)
        self.pos = {k: i for i, k in enumerate(self.knobs)}
        self.oracle = oracle
        self.batch_oracle = batch_oracle
        self.budget = budget
        self.memo: dict[frozenset, str] = dict(known or {})
        self.probes: list[Probe] = []
        self.rounds = 0
        self._batch = False

    def ordered(self, names: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(set(names), key=self.pos.__getitem__))

    def _check_budget(self, extra: int = 1) -> None:
        if self.budget is not None and len(self.probes) + extra > self.budget:
            raise SearchBudgetExceeded()

    def __call__(self, on: Iterable[str], purpose: str) -> str:
        key = frozenset(on)
        if key in self.memo:
            return self.memo[key]
        self._check_budget()
        on_t = self.ordered(key)
        outcome = self.oracle(on_t, purpose)
        if outcome not in OUTCOMES:
            raise ValueError(f"oracle returned {outcome!r}; expected one of {OUTCOMES}")
        self.memo[key] = outcome
        self.rounds += not self._batch
        self.probes.append(Probe(len(self.probes) + 1, on_t, outcome, purpose, self.rounds))
        return outcome

    def many(self, sets: list[Iterable[str]], purposes: list[str]) -> list[str]:
        """Judge several sets; new ones go to the batch oracle together (parallel evaluation)."""
        keys = [frozenset(s) for s in sets]
        new, new_purposes = [], []
        for k, p in zip(keys, purposes):
            if k not in self.memo and k not in new:
                new.append(k)
                new_purposes.append(p)
        if not new:
            return [self.memo[k] for k in keys]
        self.rounds += 1  # one round, whether the oracle takes the batch at once or one by one
        if self.batch_oracle is not None:
            self._check_budget(len(new))
            outs = self.batch_oracle([self.ordered(k) for k in new], new_purposes)
            for k, p, o in zip(new, new_purposes, outs):
                self.memo[k] = o
                self.probes.append(Probe(len(self.probes) + 1, self.ordered(k), o, p, self.rounds))
        self._batch = True
        try:
            return [self(k, p) for k, p in zip(keys, purposes)]
        finally:
            self._batch = False


def _names(s) -> str:
    s = list(s)
    return ", ".join(s) if len(s) <= 4 else f"{', '.join(s[:3])}, ... ({len(s)} knobs)"


# ----------------------------------------------------------------------------------- adaptive
class _Adaptive:
    def __init__(self, prober: Prober):
        self.p = prober
        self.suspects: list[str] = []

    def probe(self, on, purpose):
        return self.p(on, purpose)

    def find(self, C: list[str], B: frozenset, verified: bool) -> list[str]:
        """Minimal S within C with B+S failing. Pre: B passes; B+C fails (probed if ``verified``)."""
        if len(C) == 1:
            if not verified:
                r = self.probe(B | set(C), f"minimal + {_names(self.p.ordered(B | set(C)))}")
                if r == PASS:
                    raise _Contradiction()
                if r == UNTESTABLE:
                    self.suspects.append(C[0])
            return list(C)
        half = (len(C) + 1) // 2
        C1, C2 = C[:half], C[half:]
        r1 = self.probe(B | set(C1), f"minimal + {_names(self.p.ordered(B | set(C1)))}")
        if r1 == FAIL:
            return self.find(C1, B, True)
        if r1 == PASS:
            try:
                return self.find(C2, B, False)
            except _Contradiction:
                pass
        r2 = self.probe(B | set(C2), f"minimal + {_names(self.p.ordered(B | set(C2)))}")
        if r2 == FAIL:
            return self.find(C2, B, True)
        if not verified:  # neither half fails alone: was 'B + C fails' true at all?
            r = self.probe(B | set(C), f"minimal + {_names(self.p.ordered(B | set(C)))}")
            if r != FAIL:
                raise _Contradiction()
        if r1 == PASS and r2 == PASS:  # the knobs interact across the two halves
            S1 = self.find(C1, B | set(C2), True)
            S2 = self.find(C2, B | set(S1), True)
            return S1 + S2
        return self.untestable_half(C, B)

    def untestable_half(self, C: list[str], B: frozenset) -> list[str]:
        """A half could not be judged: fall back to one knob at a time within C."""
        outs = self.p.many([B | {k} for k in C], [f"minimal + {_names(self.p.ordered(B | {k}))}" for k in C])
        for k, r in zip(C, outs):
            if r == FAIL:
                return [k]
        unt = [k for k, r in zip(C, outs) if r == UNTESTABLE]
        if unt:
            self.suspects.append(unt[0])
            return [unt[0]]
        return list(C)  # every knob passes alone and a half is untestable: report the group


def _drop(remaining: list[str], group, requires: dict | None) -> list[str]:
    """``remaining`` without ``group`` and without the knobs that require a member of it."""
    gone = set(group)
    return [k for k in remaining if k not in gone and not (set((requires or {}).get(k, ())) & gone)]


def adaptive_search(knobs: Sequence[str], prober: Prober, requires: dict | None = None) -> SearchResult:
    res = SearchResult("adaptive", list(knobs))
    engine = _Adaptive(prober)
    remaining = list(knobs)
    try:
        while remaining:
            group = engine.find(remaining, frozenset(), True)
            if all(k in engine.suspects for k in group):
                for k in group:
                    if k not in res.suspects:
                        res.suspects.append(k)
            else:
                res.culprits.append([k for k in group if k not in engine.suspects] or group)
            remaining = _drop(remaining, group, requires)
            r = prober(remaining, "full - culprits" if remaining else "minimal")
            if r == PASS:
                res.explained = not res.suspects
                break
            if r == UNTESTABLE:
                res.explained = None
                break
            if not remaining:  # minimal itself fails: the Phase 3 assumption broke
                res.explained = False
                break
    except SearchBudgetExceeded:
        res.budget_exhausted = True
    for k in engine.suspects:
        if k not in res.suspects:
            res.suspects.append(k)
    res.probes = prober.probes
    return res


# ------------------------------------------------------------------------------ parallel adaptive
def _spread(points: list[int], k: int) -> list[int]:
    """Up to ``k`` of the sorted ``points``, spread evenly (the split of a round)."""
    if len(points) <= k:
        return list(points)
    picks = [points[min(len(points) - 1, round((j + 1) * len(points) / (k + 1)) - 1)] for j in range(k)]
    return sorted(set(picks))


class _Parallel:
    """Group testing with ``width`` probes in flight per round (module docstring)."""

    def __init__(self, prober: Prober, width: int):
        self.p = prober
        self.width = width
        self.sequential = _Adaptive(prober)  # decides among knobs whose prefixes were untestable
        self.suspects: list[str] = []

    def _purpose(self, on) -> str:
        return f"minimal + {_names(self.p.ordered(on))}"

    def prefix_bounds(self, C: list[str], B: frozenset) -> tuple[int, int]:
        """(lo, hi): B + C[:lo] passes, B + C[:hi] fails, and every length between is untestable (none
        when hi == lo + 1). Pre: B passes; B + C fails."""
        lo, hi, untestable = 0, len(C), set()
        while True:
            points = [i for i in range(lo + 1, hi) if i not in untestable]
            if not points:
                return lo, hi
            picks = _spread(points, self.width)
            # spare slots: the possible answers' own checks (B + that knob alone), last first; a failing
            # one bounds the prefix too (B + C[i-1] within B + C[:i])
            alone = [i for i in range(hi, lo, -1) if B | {C[i - 1]} not in self.p.memo][:self.width - len(picks)]
            sets = [B | set(C[:i]) for i in picks] + [B | {C[i - 1]} for i in alone]
            outs = self.p.many(sets, [self._purpose(x) for x in sets])
            fails = [i for i, r in zip(picks + alone, outs) if r == FAIL]
            hi = min(fails + [hi])
            lo = max([i for i, r in zip(picks, outs) if r == PASS and i < hi] + [lo])
            untestable |= {i for i, r in zip(picks, outs) if r == UNTESTABLE}

    def find(self, C: list[str], B: frozenset, also: Callable[[list[str]], tuple] | None = None) -> list[str]:
        """Minimal S within C with B+S failing. Pre: B passes; B + C fails. ``also(S)``: a probe (set,
        purpose) worth judging in the same round as S's own check (the search's next probe if S holds)."""
        lo, hi = self.prefix_bounds(C, B)
        S = [C[hi - 1]] if hi - lo == 1 else self.sequential.find(C[lo:hi], B | set(C[:lo]), True)
        if lo == 0 and len(S) == hi - lo:  # B + S is the failing prefix itself
            return S
        own = B | set(S)
        if own in self.p.memo:
            r = self.p.memo[own]
        else:
            extra = [also(S)] if also is not None else []
            r = self.p.many([own] + [e[0] for e in extra], [self._purpose(own)] + [e[1] for e in extra])[0]
        if r == FAIL or not C[:lo]:
            return S
        if r == UNTESTABLE and len(S) == 1:  # as the sequential search: a suspect, not a culprit
            self.suspects.append(S[0])
            return S
        return self.find(C[:lo], own) + S  # S needs partners among the knobs before it


def parallel_adaptive_search(knobs: Sequence[str], prober: Prober, width: int, requires: dict | None = None) -> SearchResult:
    res = SearchResult("adaptive", list(knobs), width=width)
    engine = _Parallel(prober, width)
    remaining = list(knobs)

    def next_probe(group):  # "full - culprits" if ``group`` is the next culprit group
        rest = _drop(remaining, group, requires)
        return rest, "full - culprits" if rest else "minimal"

    try:
        while remaining:
            group = engine.find(remaining, frozenset(), also=next_probe)
            suspects = engine.suspects + engine.sequential.suspects
            if all(k in suspects for k in group):
                res.suspects += [k for k in group if k not in res.suspects]
            else:
                res.culprits.append([k for k in group if k not in suspects] or group)
            remaining = _drop(remaining, group, requires)
            r = prober(remaining, "full - culprits" if remaining else "minimal")
            if r != FAIL or not remaining:
                res.explained = (r == PASS and not res.suspects) if r != UNTESTABLE else None
                break
    except SearchBudgetExceeded:
        res.budget_exhausted = True
    res.suspects += [k for k in engine.suspects + engine.sequential.suspects if k not in res.suspects]
    res.probes = prober.probes
    return res


# ------------------------------------------------------------------------------------- linear
def _required(knob: str, requires: dict | None) -> set[str]:
    """Every knob ``knob`` needs, transitively (its probe switches them on with it)."""
    out: set[str] = set()
    todo = list((requires or {}).get(knob, ()))
    while todo:
        r = todo.pop()
        if r not in out:
            out.add(r)
            todo += list((requires or {}).get(r, ()))
    return out


def linear_search(knobs: Sequence[str], prober: Prober, requires: dict | None = None) -> SearchResult:
    """Each knob alone from minimal; a knob whose probe fails only because a knob it requires (switched
    on with it) fails alone is not blamed: its requirement is the culprit, as the adaptive search names
    it (it drops the knobs that require a culprit). Then cumulative and pairing passes for interactions."""
    res = SearchResult("linear", list(knobs))
    try:
        outs = prober.many([{k} for k in knobs], [f"minimal + {k}" for k in knobs])
        failed = {k for k, r in zip(knobs, outs) if r == FAIL}
        for k, r in zip(knobs, outs):
            if r == FAIL and not (_required(k, requires) & failed):
                res.culprits.append([k])
            elif r == UNTESTABLE:
                res.suspects.append(k)
        blamed = set(res.culprit_knobs()) | set(res.suspects)
        while True:
            rest = _drop(list(knobs), blamed, requires)
            r = prober(rest, "full - culprits" if rest else "minimal")
            if r != FAIL or not rest:
                res.explained = (r == PASS and not res.suspects) if r != UNTESTABLE else None
                break
            # some knobs fail only together: cumulative re-enabling in pipeline order
            acc: list[str] = []
            last = None
            for k in rest:
                acc.append(k)
                if prober(acc, f"minimal + {_names(acc)} (cumulative)") == FAIL:
                    last = k
                    break
            if last is None:
                res.explained = None
                break
            partner = None
            for x in acc[:-1]:
                if prober({x, last}, f"minimal + {x}, {last} (pair)") == FAIL:
                    partner = x
                    break
            group = [partner, last] if partner else list(acc)
            res.culprits.append(group)
            blamed |= set(group)
    except SearchBudgetExceeded:
        res.budget_exhausted = True
    res.probes = prober.probes
    return res


def run_search(strategy: str, knobs: Sequence[str], oracle, batch_oracle=None, budget: int | None = None,
               known: dict | None = None, requires: dict | None = None, parallel: int = 1) -> SearchResult:
    """Run ``strategy`` over ``knobs`` (pipeline order) with ``oracle(on_tuple, purpose) -> outcome``.

    ``known`` seeds the memo with configurations judged before the search (full fails, minimal
    passes), which are then not counted as search probes. ``requires`` maps a knob to the knobs
    it needs (the oracle switches those on with it); once a knob is blamed, the knobs requiring it
    leave the search with it. ``parallel``: probes that can be judged at once (``adaptive`` puts
    up to ``MAX_WIDTH`` of them in flight per round; ``linear`` batches all of its single-knob probes).
    """
    seed = {frozenset(): PASS, frozenset(knobs): FAIL}
    seed.update(known or {})
    prober = Prober(knobs, oracle, batch_oracle, budget=budget if budget is not None else default_budget(len(knobs)),
                    known=seed)
    width = max(1, min(int(parallel), MAX_WIDTH))
    if strategy == "adaptive" and width > 1:
        return parallel_adaptive_search(knobs, prober, width, requires)
    if strategy == "adaptive":
        return adaptive_search(knobs, prober, requires)
    if strategy == "linear":
        return linear_search(knobs, prober, requires)
    from harness.errors import one_of

    raise one_of("strategy", strategy, list(STRATEGIES), "Pass --strategy adaptive or --strategy linear.")


def default_budget(n: int) -> int:
    """Search evaluations allowed before giving up (guards a non-monotone oracle)."""
    return 3 * n + 8


def expected_probes(strategy: str, n: int) -> dict:
    """Evaluations the search needs (cache misses), excluding reference/full/minimal runs."""
    import math

    lg = math.ceil(math.log2(n)) if n > 1 else 0
    if strategy == "linear":
        return {"one_culprit": n + 1, "two_culprits": n + 1, "pair": 2 * n + 1, "worst": default_budget(n)}
    return {"one_culprit": lg + 2, "two_culprits": 2 * lg + 4, "pair": 4 * lg + 3, "worst": default_budget(n)}
