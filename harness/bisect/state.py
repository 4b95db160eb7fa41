"""BisectState: what a bisect run found, phase by phase - the orchestrator fills it, the report reads it.

``harness.bisect.report`` turns it into files: ``phases`` and the other plain fields go into
summary.json as they are (schema: harness/bisect/report/SCHEMA.md), ``trail`` step by step,
``results`` and ``specs`` (the decisive comparison, reference vs full candidate) into
samples.jsonl and decisive/.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.bisect.oracle import Step
from harness.evaluation.spec import EvalResult, EvalSpec

# outcome: culprit | unconfirmed | core_path | unexplained (the regression's explanation), or Phase 1's
# verdict when it is not a regression (same | improved | inconclusive | unresolved), or harness_suspect


@dataclass
class BisectState:
    trail: list[Step] = field(default_factory=list)  # every judged evaluation, in order
    warnings: list[str] = field(default_factory=list)  # knob settings that did not take effect
    phases: dict[str, dict] = field(default_factory=dict)  # "0", "1", "2", "3", "search", "6", "4a", "4c", "5"
    outcome: str | None = None
    headline: str = ""
    culprits: list[dict] = field(default_factory=list)  # one per culprit group (see isolate.describe_culprit)
    next_steps: list[str] = field(default_factory=list)
    results: dict[str, EvalResult] = field(default_factory=dict)  # "reference", "candidate": the decisive runs
    specs: dict[str, EvalSpec] = field(default_factory=dict)  # their specs (at the escalated sample count)
    # how this run executed, not what it found (e.g. Phase 5 in the background or inline): summary.json's
    # ``run`` section, which a rerun from the store may change
    run_notes: dict = field(default_factory=dict)
    # Phase 4, automated (harness/bisect/localize_step.py): the first divergence inside the culprit
    localization: dict = field(default_factory=dict)

    def conclude(self, outcome: str, headline: str) -> None:
        self.outcome, self.headline = outcome, headline

    def decisive_pair(self) -> tuple[EvalResult, EvalResult] | None:
        """(reference, candidate) when both decisive runs finished, else None."""
        ref, cand = self.results.get("reference"), self.results.get("candidate")
        if ref is None or cand is None or ref.status != "ok" or cand.status != "ok":
            return None
        return ref, cand
