"""BisectContext: what every phase of a bisect run needs to evaluate a configuration.

The inputs and the plan, the runner, the three configs every phase is described against (the
user's full config, the minimal config, their resolved forms), the reference spec, the Oracle
that judges a candidate against the reference, and ``judge(user_cfg, ...)``: one configuration
evaluated and judged as one step of the trail (the same configuration judged twice in a run is
evaluated once). The phases (``harness.bisect.validate``, ``candidate``, ``isolate``, ``confirm``,
``quantization``, ``world_size``, ``breakdown``) use it; the orchestrator owns it.
"""
from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Callable

from harness.backends import capabilities
from harness.bisect.oracle import Oracle, Step
from harness.bisect.plan import Plan
from harness.config import config_diff, config_hash, resolve
from harness.evaluation.spec import EvalResult, EvalSpec


def score_of(res: EvalResult | None):
    return None if res is None else (res.metrics or {}).get("score")


def search_alpha(alpha: float, knobs: int) -> float:
    """Per-decision alpha of the search's regression calls: alpha / (ceil(log2 n) + 2), the number of
    decisions a one-culprit search makes (minimal, full and its probes), so the family-wise chance
    of any false regression call stays near alpha (docs/method.md, "Statistics"); the report prints
    the bound for the decisions made. Equivalence ("pass") decisions stay at alpha each: a false
    pass sends the search the wrong way, which Phase 6's fresh-prompt check then does not confirm."""
    import math

    return alpha / ((math.ceil(math.log2(knobs)) if knobs > 1 else 0) + 2)


def candidate_spec(inp, user_cfg: dict, label: str, model: str | None = None, samples: int | None = None,
                   sample_ids: list[str] | None = None) -> EvalSpec:
    """The candidate backend's spec for one configuration of this run (``BisectContext.cand_spec``)."""
    from harness.bisect.protocol import paired_sampling

    return EvalSpec(backend=inp.backend, model=model or inp.model, task=inp.task, config=user_cfg,
                    dataset=inp.dataset, samples=inp.samples if samples is None else samples, seed=inp.seed,
                    prompt_options=dict(inp.prompt_options), plugins=list(inp.plugins), label=label,
                    sampling=paired_sampling(getattr(inp, "reference_protocol", "auto"), inp.task),
                    sample_ids=sample_ids)


class BisectContext:
    """``compare(ref_records, cand_records) -> Comparison`` judges one candidate against the reference
    (the orchestrator's, with the run's alpha, min_effect and noise floor ``self.noise``)."""

    def __init__(self, inp, plan: Plan, runner, run_dir: Path, compare: Callable, classify=None):
        self.inp = inp
        self.plan = plan
        self.runner = runner
        self.run_dir = Path(run_dir)
        self.cat = inp.catalogue
        self.user = inp.user_config
        self.full = resolve(self.cat, self.user)
        self.minimal_user = plan.config(self.user, ())
        self.minimal = resolve(self.cat, self.minimal_user)
        self.compare = compare
        self.classify_fn = classify
        self.noise = None  # Phase 0's A/A comparisons, when measured
        self.search_alpha = search_alpha(inp.alpha, len(plan.knob_names))
        self.calibration: dict | None = None  # the engine pair's measured noise (calibrate_from)
        self.warnings: list[str] = []  # knob settings that did not take effect, in the order found
        self.full_run: tuple[EvalResult, int] | None = None  # Phase 0's full-candidate run, reused by Phase 1
        self.protocols: dict | None = None  # sampling protocols of the reference runs (harness/bisect/protocol.py)
        self.ref_spec = self._reference_spec()
        self.oracle = self.make_oracle(self.ref_spec)
        self._available = None
        self._judged: dict[tuple, Step] = {}  # (config hash, model, samples, oracle) -> first judgement

    def _reference_spec(self) -> EvalSpec:
        from harness.bisect.protocol import paired_sampling

        inp, plan = self.inp, self.plan
        takes_ws = capabilities(inp.backend_ref).takes_world_size
        ref_cfg = {"world_size": plan.world_size} if takes_ws and plan.world_size > 1 else {}
        return EvalSpec(backend=inp.backend_ref, model=inp.model, task=inp.task, config=ref_cfg,
                        dataset=inp.dataset, samples=inp.samples, seed=inp.seed,
                        prompt_options=dict(inp.prompt_options), label=f"reference {inp.backend_ref}",
                        sampling=paired_sampling(getattr(inp, "reference_protocol", "auto"), inp.task))

    # -- plumbing ---------------------------------------------------------------------------
    def make_oracle(self, ref_spec: EvalSpec) -> Oracle:
        return Oracle(self.runner, ref_spec, self.compare, available=self.available, on_step=None)

    @property
    def trail(self) -> list[Step]:
        return self.oracle.steps

    def compare_plain(self, ref_records, cand_records):
        """``compare`` without the noise floor (the A/A repeats that measure it)."""
        saved, self.noise = self.noise, None
        try:
            return self.compare(ref_records, cand_records)
        finally:
            self.noise = saved

    def available(self) -> int | None:
        """How many samples the search may escalate to: the data set less a reserve (``phase6_reserve``) of
        prompts it never sees, so Phase 6 can confirm on fresh prompts (harness/bisect/confirm.py) even
        when a "same" needed most of a small data set (the demo's 1200 items)."""
        if self._available is None:
            from harness.evaluation.spec import build_samples

            try:
                _, samples = build_samples(replace(self.ref_spec, samples=None))
                self._available = len(samples) - phase6_reserve(len(samples), self.inp.samples)
            except Exception:  # noqa: BLE001 - escalation is optional
                self._available = 0
        return self._available

    def log(self, text: str) -> None:
        prog = getattr(self.runner, "progress", None)
        if prog is not None and hasattr(prog, "log"):
            prog.log(text)

    def phase(self, name: str) -> None:
        if hasattr(self.runner, "phase"):
            self.runner.phase(name)

    def cand_spec(self, user_cfg: dict, label: str, model: str | None = None, samples: int | None = None,
                  sample_ids: list[str] | None = None) -> EvalSpec:
        return candidate_spec(self.inp, user_cfg, label, model=model, samples=samples, sample_ids=sample_ids)

    # -- judging ----------------------------------------------------------------------------
    def judge(self, user_cfg: dict, phase: str, purpose: str, on=None, base: str = "minimal", model=None,
              oracle: Oracle | None = None, result=None, alpha: float | None = None) -> Step:
        """Evaluate ``user_cfg`` (or take its ``result``) and judge it against the reference of ``oracle``
        (default the run's, on the search's prompts) at ``alpha`` (default the run's): one trail step,
        whose config diff is relative to ``base`` ("minimal", "full", or "auto": the shorter)."""
        target = resolve(self.cat, user_cfg)
        base, diff = self._diff(target, base)
        o = oracle or self.oracle
        spec = self.cand_spec(user_cfg, f"{phase}: {purpose}", model=model, sample_ids=o.ref_spec.sample_ids)
        memo_key = (config_hash(target), spec.model, spec.samples, id(o), alpha)
        prev = self._judged.get(memo_key)
        if prev is not None:  # judged earlier in this run: the same verdict, no second evaluation
            return self._rejudge(prev, o, phase, purpose, on, base, diff)
        step = o.judge(spec, phase, purpose, on=on, diff_base=base, config_diff=diff, result=result, alpha=alpha)
        step.config_hash = config_hash(target)
        self._check_effects(step, target)
        self._judged[memo_key] = step
        return step

    def prefetch(self, configs: list[tuple[dict, str]], oracle: Oracle | None = None, alpha: float | None = None) -> None:
        """With parallel evaluations: evaluate together what judging these (user config, label) pairs next
        will need (``Oracle.prefetch``); the ``judge`` calls that follow read the results."""
        o = oracle or self.oracle
        o.prefetch([self.cand_spec(cfg, label, sample_ids=o.ref_spec.sample_ids) for cfg, label in configs], alpha)

    def _diff(self, target: dict, base: str) -> tuple[str, list[str]]:
        if base == "auto":  # the shorter description: vs minimal or vs full
            d_min, d_full = config_diff(self.minimal, target), config_diff(self.full, target)
            return ("minimal", d_min) if len(d_min) <= len(d_full) else ("full", d_full)
        return base, config_diff({"minimal": self.minimal, "full": self.full}.get(base, self.full), target)

    @staticmethod
    def _rejudge(prev: Step, o: Oracle, phase: str, purpose: str, on, base: str, diff: list[str]) -> Step:
        """A copy of an earlier judgement as a new trail step (cached, no evaluation)."""
        step = copy.copy(prev)
        step.phase, step.purpose, step.on = phase, purpose, list(on) if on is not None else None
        step.diff_base, step.config_diff, step.cached, step.seconds = base, diff, True, 0.0
        step.warnings = list(prev.warnings)
        object.__setattr__(step, "_result", o.result_of(prev))
        o.record(step)
        return step

    def calibrate_from(self, step: Step, source: str) -> None:
        """The engine pair's noise, measured on the first reference-like config (one judged the same
        as the reference or better): recorded for the report, and its 95th-percentile letter KL
        becomes the KL diagnostic's tolerance for every later comparison (never below the default)."""
        comp = step.comparison or {}
        if self.calibration is not None or step.verdict not in ("same", "improved") or not comp:
            return
        from harness.bisect.calibration import calibration_of

        self.calibration = calibration_of(comp, step, source)

    @property
    def kl_settings(self) -> tuple[float | None, str | None]:
        """(tolerance, source) of the KL diagnostic: calibrated when measured, else None (the default)."""
        if not self.calibration or self.calibration.get("kl_tolerance") is None:
            return None, None
        return self.calibration["kl_tolerance"], self.calibration["kl_tolerance_source"]

    def reference_step(self, spec: EvalSpec, phase: str, purpose: str, oracle: Oracle | None = None) -> tuple[Step, EvalResult]:
        """Run a reference-backend spec as a trail step (no verdict: it is what the others are judged by)."""
        o = oracle or self.oracle
        res, attempts = o.run(spec)
        step = Step(index=0, phase=phase, purpose=purpose, backend=spec.backend, model=spec.model,
                    samples=spec.samples, attempts=attempts, diff_base="reference")
        o._fill(step, res)
        step.outcome = None
        o.record(step)
        return step, res

    def _check_effects(self, step: Step, target: dict) -> None:
        """Warn when a requested transform setting did not take effect (engine's per-transform records)."""
        res = self.oracle.result_of(step)
        if res is None or res.status != "ok":
            return
        from harness.bisect.effects import effect_warnings

        step.warnings = effect_warnings(target, res.info, [k.name for k in self.plan.togglable])
        step.warnings += [str(w) for w in (res.info.get("warnings") or []) if str(w) not in step.warnings]
        for w in step.warnings:
            if w not in self.warnings:
                self.warnings.append(w)


def phase6_reserve(total: int, samples: int | None) -> int:
    """Prompts kept out of the search for Phase 6's fresh confirmation: an eighth of the data set, at least
    ``samples``, so Phase 6 can escalate a weak culprit's check a few times; nothing when the search would
    keep fewer than ``samples`` itself (a small data set)."""
    reserve = max(samples or 0, total // 8)
    return 0 if not samples or total - reserve < samples else reserve
