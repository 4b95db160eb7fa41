"""Each bisect step's oracle: evaluate a configuration and judge it against the reference run.

The verdict of a step is the paired comparison of its per-sample records with the reference
run's on the same samples (``harness.comparison.verdict.compare_runs``): ``regressed`` -> the step *fails*;
``same`` or ``improved`` -> it *passes*. Two verdicts decide nothing and are handled here:

* ``unresolved`` (the engine crashed, hung, ran out of memory): the evaluation is run once more
  (the store never serves an unresolved result from the cache, so the retry really runs). If it
  is still unresolved the step is ``untestable`` - never a pass.
* ``inconclusive`` (not enough evidence either way): the step is re-run once at the sample count
  the comparison says would decide it (``n_needed``, from the variance it observed, plus
  ``ESCALATE_MARGIN``; twice as many when it cannot be sized; capped at what the data set holds), together with the reference at the same
  sample count, and judged again (at most ``MAX_ESCALATIONS`` times, each sized on the larger run; the
  last takes every sample available).
  If the data set has no more samples, the count cannot be sized, or the largest run is still
  inconclusive, the step is ``untestable``. Searching on an untestable
  step never reads it as a pass (``harness.bisect.search``).

With parallel evaluations (``--max-parallel`` > 1) the judging stays sequential and deterministic (the
same trail, in the same order, as one at a time), but what it will need is evaluated together first
(``prefetch``): each candidate with the reference at its sample count, and an inconclusive one again at
its escalated count together with the reference there. The judging then reads those results back.

Every judged step becomes a ``Step`` in the trail the report shows.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable

from harness.bisect.search import FAIL, PASS, UNTESTABLE
from harness.evaluation.spec import EvalResult, EvalSpec

ESCALATE_MARGIN = 1.15  # n_needed is an estimate from a noisy sample: aim a little above it
MAX_ESCALATIONS = 3  # re-sizing from each larger run's own variance; "same" also waits on the other routes
MIN_GROWTH = 1.5  # a re-sized count below this factor of the last one rarely decides it: grow at least this much
VERDICT_OUTCOME = {"regressed": FAIL, "same": PASS, "improved": PASS}


@dataclass
class Step:
    index: int
    phase: str
    purpose: str
    backend: str
    model: str
    samples: int | None
    on: list[str] | None = None  # knobs at their full value (search / confirmation steps)
    diff_base: str | None = None  # what config_diff is relative to ("minimal", "full", "reference")
    config_diff: list[str] = field(default_factory=list)
    config: dict | None = None  # the user overlay evaluated (None for reference-backend runs)
    config_hash: str | None = None  # hash of the resolved config
    status: str = "ok"
    verdict: str | None = None
    outcome: str | None = None
    attempts: int = 1
    escalated_to: int | None = None
    score: float | None = None
    ref_score: float | None = None
    n: int | None = None
    comparison: dict | None = None
    summary: list[str] = field(default_factory=list)
    cached: bool = False
    seconds: float = 0.0
    cache_key: str | None = None
    error: str | None = None
    log_tail: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def _comparison_dict(comp) -> dict:
    if comp is None:
        return {}
    if hasattr(comp, "to_dict"):
        return comp.to_dict()
    return dict(comp)


def _summary_lines(comp) -> list[str]:
    if comp is not None and hasattr(comp, "summary_lines"):
        try:
            return list(comp.summary_lines())
        except Exception:  # noqa: BLE001 - a summary is a nicety
            return []
    return []


class Oracle:
    """Runs specs through the runner, retries unresolved ones, judges them against the reference.

    ``compare(ref_records, cand_records) -> Comparison`` (with ``.verdict``) is
    ``harness.comparison.verdict.compare_runs`` with the run's alpha / min_effect / noise bound in.
    ``available`` returns how many samples the data set holds (for inconclusive escalation).
    ``on_step(step)``, when given, is called after every step recorded in ``steps`` (the trail).
    """

    def __init__(self, runner, ref_spec: EvalSpec, compare: Callable, available: Callable[[], int | None] | None = None,
                 on_step: Callable[[Step], None] | None = None, escalate: bool = True):
        self.runner = runner
        self.ref_spec = ref_spec
        self.compare = compare
        self.available = available
        self.on_step = on_step
        self.escalate = escalate
        self.steps: list[Step] = []
        self._refs: dict[int | None, EvalResult] = {}
        self._judged: dict[str, Step] = {}

    # -- evaluation -------------------------------------------------------------------------
    def run(self, spec: EvalSpec) -> tuple[EvalResult, int]:
        """Evaluate, retrying an unresolved result once. Returns (result, attempts)."""
        res = self.runner.evaluate(spec)
        if res.status == "ok":
            return res, 1
        return self.runner.evaluate(spec), 2

    def ref_spec_at(self, n: int | None) -> EvalSpec:
        return replace(self.ref_spec, samples=n, label=f"{self.ref_spec.label} (n={n})")

    def reference(self, samples: int | None = None) -> tuple[EvalResult, int]:
        n = self.ref_spec.samples if samples is None else samples
        if n not in self._refs:
            spec = self.ref_spec_at(n)
            res, attempts = self.run(spec)
            self._refs[n] = res
            step = Step(index=0, phase="ref", purpose=f"reference run at {n} samples", backend=spec.backend,
                        model=spec.model, samples=n, attempts=attempts, diff_base="reference")
            self._fill(step, res)
            self.record(step)
        return self._refs[n], 1

    # -- judging ----------------------------------------------------------------------------
    def judge(self, spec: EvalSpec, phase: str, purpose: str, on=None, diff_base=None, config_diff=None,
              record: bool = True, result: tuple[EvalResult, int] | None = None, alpha: float | None = None) -> Step:
        """Evaluate ``spec`` (or take its ``result`` = (EvalResult, attempts) already evaluated) and judge
        it against the reference at the same sample count (at ``alpha``, default the run's)."""
        t0 = time.monotonic()
        step = Step(index=len(self.steps) + 1, phase=phase, purpose=purpose, backend=spec.backend,
                    model=spec.model, samples=spec.samples, on=list(on) if on is not None else None,
                    diff_base=diff_base, config_diff=list(config_diff or []), config=spec.config)
        if result is None and spec.samples not in self._refs:  # candidate and reference together
            self.prefetch([spec], alpha)
        res, attempts = result if result is not None else self.run(spec)
        step.attempts = attempts
        self._fill(step, res)
        if res.status == "ok":
            comp = self._compare(spec.samples, res, step, alpha)
            step.verdict = comp.verdict if comp is not None else "unresolved"
            if self.escalate:
                comp = self._escalate(spec, step, comp, alpha)
            step.comparison = _comparison_dict(comp)
            step.summary = _summary_lines(comp)
        else:
            step.verdict = "unresolved"
        step.outcome = VERDICT_OUTCOME.get(step.verdict, UNTESTABLE)
        step.seconds = round(time.monotonic() - t0, 3)
        if record:
            self.record(step)
        return step

    def _escalate(self, spec: EvalSpec, step: Step, comp, alpha: float | None):
        """Re-run an inconclusive step at the sample count its comparison says would decide it, up to
        ``MAX_ESCALATIONS`` times (a count sized on a small sample can fall short)."""
        n = spec.samples
        for i in range(MAX_ESCALATIONS):
            if step.verdict != "inconclusive":
                break
            bigger = self._escalated_samples(n, getattr(comp, "n_needed", None), final=i == MAX_ESCALATIONS - 1)
            if bigger is None:
                break
            self.prefetch([replace(spec, samples=bigger)], alpha)  # with the reference at that count
            res, attempts = self.run(replace(spec, samples=bigger))
            step.attempts += attempts
            step.escalated_to = n = bigger
            self._fill(step, res)
            comp = self._compare(bigger, res, step, alpha) if res.status == "ok" else None
            step.verdict = comp.verdict if comp is not None else "unresolved"
        return comp

    def prefetch(self, specs: list[EvalSpec], alpha: float | None = None) -> None:
        """With parallel evaluations: evaluate at once what judging ``specs`` (in order) will need — each
        spec with the reference at its sample count, then, for each comparison that is inconclusive, the
        spec again at its escalated sample count with the reference there — so the judging that follows
        reads results instead of waiting on one evaluation at a time. Records nothing; judging does."""
        if getattr(self.runner, "max_parallel", 1) <= 1:
            return
        wave = list(specs)
        for i in range(1 + (MAX_ESCALATIONS if self.escalate else 0)):
            if not wave:
                return
            counts = list(dict.fromkeys(s.samples for s in wave))
            results = self.runner.evaluate_many(wave + [self.ref_spec_at(n) for n in counts if n not in self._refs])
            refs = dict(zip([n for n in counts if n not in self._refs], results[len(wave):]))
            refs.update({n: self._refs[n] for n in counts if n in self._refs})
            final = i + 1 == MAX_ESCALATIONS  # the escalation this wave's verdicts would ask for is the last
            wave = [s for s in (self._escalation_of(s, c, refs[s.samples], alpha, final) for s, c in zip(wave, results))
                    if s is not None]

    def _escalation_of(self, spec: EvalSpec, res: EvalResult, ref: EvalResult, alpha,
                       final: bool = False) -> EvalSpec | None:
        """``spec`` at the sample count its inconclusive comparison escalates to (None: no escalation)."""
        if not self.escalate or res.status != "ok" or ref.status != "ok":
            return None
        comp = self.compare(ref.records, res.records) if alpha is None else \
            self.compare(ref.records, res.records, alpha=alpha)
        if comp is None or comp.verdict != "inconclusive":
            return None
        bigger = self._escalated_samples(spec.samples, getattr(comp, "n_needed", None), final)
        return None if bigger is None else replace(spec, samples=bigger)

    def record(self, step: Step) -> None:
        step.index = len(self.steps) + 1
        self.steps.append(step)
        if self.on_step:
            self.on_step(step)

    def result_of(self, step: Step) -> EvalResult | None:
        return getattr(step, "_result", None)

    # -- internals --------------------------------------------------------------------------
    def _fill(self, step: Step, res: EvalResult) -> None:
        step.status = res.status
        step.cached = bool(res.info.get("cached")) and step.attempts == 1
        step.cache_key = res.info.get("cache_key")
        step.error = res.error
        step.log_tail = res.log_tail if res.status != "ok" else None
        step.score = (res.metrics or {}).get("score")
        step.n = (res.metrics or {}).get("n", len(res.records) if res.records else None)
        object.__setattr__(step, "_result", res)

    def _compare(self, samples, res: EvalResult, step: Step, alpha: float | None = None):
        ref, _ = self.reference(samples)
        step.ref_score = (ref.metrics or {}).get("score")
        if ref.status != "ok":
            return None
        if alpha is None:
            return self.compare(ref.records, res.records)
        return self.compare(ref.records, res.records, alpha=alpha)

    def _escalated_samples(self, n: int | None, needed: int | None, final: bool = False) -> int | None:
        """The sample count an inconclusive step is re-run at, or None (untestable). When the comparison
        cannot size it (no equivalence is reachable, and its estimate is below the minimum effect) or
        sizes it below n, the count doubles; otherwise it grows by at least ``MIN_GROWTH``. The ``final``
        escalation takes everything available: a count sized on a noisy estimate can fall short again,
        and an "inconclusive" left with prompts unused would be the search's fault, not the data's (one
        clean demo bisect under engine noise stopped at 612 of 1050 prompts)."""
        if n is None or self.available is None:
            return None
        avail = self.available()
        if not avail or avail <= n:
            return None
        if final:
            return avail
        target = int(needed * ESCALATE_MARGIN) + 1 if needed else 0
        return min(avail, max(target, int(n * MIN_GROWTH) + 1) if target > n else 2 * n)
