"""The bisect run: the method's phases in order, on cached evaluations (docs/method.md, "Phase 0".."Phase 6").

    0    validate the harness (``validate``): reference run, prompt identity across backends,
         output format, non-degenerate accuracy, reference score, A/A noise
    1-2  the full candidate config vs the reference (``candidate``): paired verdict, Phase-2 label
    3    isolation (``isolate``): knobs with no effect in the full run leave the search; strip to
         minimal; still regresses -> core-path bug, and the core-path ladder (``core_path``) tries the
         installed attention / KV-cache / compile alternatives one at a time; recovers -> search the
         knobs (adaptive group testing or linear, one knob at a time)
    6    confirm both ways (``confirm``): full minus the culprits recovers; minimal plus the
         culprits regresses
    4a   quantized model or config (``quantization``): fake-quant mode, unquantized baseline
    4c   world_size > 1 (``world_size``): ladder 1, 2, N and allreduce_strategy NCCL
    4    localize the first divergence inside the culprit (``localize_step``): layer-wise
         comparison at module boundaries and AD's graph dumps; its worker starts with the search
    5    per-subject breakdown of the decisive comparison (``breakdown``), started in the
         background when the search is about to run
         then the next steps (``next_steps``)

Every evaluation goes through the Runner (cached in the store, fresh worker process, crash ->
unresolved), and every judgement through the Oracle (retry once, escalate an inconclusive step),
both held by the run's ``BisectContext``. Because the search is deterministic and every finished
evaluation is stored before the next one starts, a rerun after a kill replays the same trail from
the store and writes the same summary. The phases record their findings in a ``BisectState``;
``harness.bisect.report`` turns it into files.
"""
from __future__ import annotations

from pathlib import Path

from harness.bisect.breakdown import BackgroundBreakdown, per_subject_breakdown
from harness.bisect.candidate import compare_full_config
from harness.bisect.confirm import confirm_culprits
from harness.bisect.context import BisectContext
from harness.bisect.core_path import run_core_ladder
from harness.bisect.isolate import prune_no_effect, search_knobs, strip_to_minimal
from harness.bisect.localize_step import Localizer
from harness.bisect.next_steps import prescribe
from harness.bisect.oracle import Step
from harness.bisect.plan import Plan
from harness.bisect.quantization import check_quantization
from harness.bisect.search import expected_probes
from harness.bisect.state import BisectState
from harness.bisect.validate import validate_harness
from harness.bisect.world_size import check_world_size


def expected_evaluations(strategy: str, knobs: int, aa_repeats: int = 0) -> int:
    """What a one-culprit run evaluates, for the progress bar and its ETA: the reference and the full
    candidate (+ the A/A repeats); the minimal config, a pass, which under engine noise is re-run at the
    few hundred samples an equivalence needs, with the reference at that count (3); the search's probes
    (``expected_probes``), half of them passes re-run the same way (+2 each); Phase 6 on fresh prompts:
    their reference, full minus the culprit (a pass, +2) and minimal plus it (5). An estimate: the bar's
    total follows what the run really does."""
    search = expected_probes(strategy, knobs)["one_culprit"] if knobs else 0
    return 2 + aa_repeats + 3 + search + 2 * (search // 2) + (5 if knobs else 0)


class Bisector:
    """One bisect run. ``compare`` and ``classify`` replace the paired verdict and the Phase-2
    classifier (tests); ``run()`` returns the ``BisectState``."""

    def __init__(self, inp, plan: Plan, runner, run_dir: Path, compare=None, classify=None):
        self.inp = inp
        self.plan = plan
        self.runner = runner
        self._compare_fn = compare
        self.ctx = BisectContext(inp, plan, runner, run_dir, compare=self._compare, classify=classify)
        self.oracle = self.ctx.oracle
        # the trail and the warnings are the context's own lists, filled as the phases judge steps
        self.state = BisectState(trail=self.ctx.trail, warnings=self.ctx.warnings,
                                 specs={"reference": self.ctx.ref_spec})

    @property
    def trail(self) -> list[Step]:
        return self.oracle.steps

    def _compare(self, ref_records, cand_records, alpha: float | None = None):
        if self._compare_fn is not None:
            return self._compare_fn(ref_records, cand_records, noise=self.noise)
        from harness.comparison.verdict import VerdictOptions, compare_runs

        tolerance, source = self.ctx.kl_settings
        kl = {"kl_tolerance": tolerance, "kl_tolerance_source": source} if tolerance is not None else {}
        options = VerdictOptions(alpha=self.inp.alpha, call_alpha=alpha, min_effect=self.inp.min_effect,
                                 on_invalid="unresolved", **kl)
        return compare_runs(ref_records, cand_records, noise=self.noise, options=options,
                            labels=(self.inp.backend_ref, self.inp.backend))

    @property
    def noise(self):
        """The noise floor the verdicts are judged against (Phase 0's A/A repeats, or None)."""
        return self.ctx.noise

    # ---------------------------------------------------------------------------- the pipeline
    def run(self) -> BisectState:
        ctx, state = self.ctx, self.state
        if hasattr(self.runner, "prestart"):  # the workers' imports overlap Phase 0's preparation
            self.runner.prestart([ctx.ref_spec, ctx.cand_spec(ctx.user, "full candidate config")])
        self._announce_plan()
        if not validate_harness(ctx, state):
            return self.finish()
        if compare_full_config(ctx, state) != "regressed":
            per_subject_breakdown(ctx, state)
            return self.finish()
        background = BackgroundBreakdown.start(ctx, state)
        localizer = Localizer.start(ctx, state)
        try:
            self.isolate(localizer)
            if self.plan.quantized:
                check_quantization(ctx, state)
            if self.plan.world_size > 1:
                check_world_size(ctx, state)
            localizer.run()
        finally:
            localizer.close()
        per_subject_breakdown(ctx, state, background)
        return self.finish()

    def _announce_plan(self) -> None:
        """The progress bar's expected total (``expected_evaluations``), set again once the knobs that have
        no effect on this model have left the search."""
        total = expected_evaluations(self.plan.strategy, len(self.plan.knobs), self.inp.aa_repeats)
        if hasattr(self.runner, "expect"):
            self.runner.expect(total)
        elif hasattr(self.runner, "plan"):
            self.runner.plan(total)

    def isolate(self, localizer=None) -> None:
        """Phase 3, then (when minimal recovers) the search and Phase 6 (during which ``localizer`` already
        works on the search's culprits)."""
        ctx, state = self.ctx, self.state
        if prune_no_effect(ctx, state):
            self._announce_plan()
        minimal_verdict = strip_to_minimal(ctx, state)
        if minimal_verdict == "regressed":
            state.conclude("core_path", "the minimal config still regresses: a core-path bug (weight loading, "
                           "attention, KV cache), not an optional transform")
            run_core_ladder(ctx, state)
        elif minimal_verdict in ("same", "improved"):
            found = search_knobs(ctx, state)
            if localizer is not None and found is not None:
                localizer.speculate(found.culprits)
            confirm_culprits(ctx, state, found)
        else:
            state.conclude("unexplained", f"the minimal config is {minimal_verdict}: no passing baseline to "
                           "search from")

    def finish(self) -> BisectState:
        from harness.bisect.calibration import decision_counts

        self.state.phases["calibration"] = self.ctx.calibration or {"measured": False}
        self.state.phases["decisions"] = decision_counts(self.state.trail, self.ctx.search_alpha)
        self.state.next_steps = prescribe(self.state)
        return self.state
