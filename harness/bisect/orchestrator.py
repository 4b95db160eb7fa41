"""The bisect run: Phases 0-6 of the AD accuracy method, in order, on cached evaluations.

    0    validate the harness: reference run, prompt identity across backends, output format,
         non-degenerate accuracy, reference score (--reference-score / --references), A/A noise
    1-2  full candidate config vs the reference: paired verdict, Phase-2 label
    3    strip to minimal: still regresses -> core-path bug (then Phase 4); recovers -> search
    search  adaptive (group testing / delta debugging) or linear (one knob at a time)
    6    confirm both ways: full minus the culprits recovers; minimal plus the culprits regresses
    4a   quantized model/config: unquantized baseline (--unquantized-model), fake-quant mode
    4c   world_size > 1: ladder 1, 2, N and allreduce_strategy NCCL
    5    per-subject breakdown of the decisive comparison (reference vs full candidate)

Every evaluation goes through the Runner (cached in the store, fresh worker process, crash ->
unresolved), and every judgement through the Oracle (retry once, escalate an inconclusive step).
Because the search is deterministic and every finished evaluation is stored before the next one
starts, a rerun after a kill replays the same trail from the store and writes the same summary.
The orchestrator collects plain dicts; ``harness.bisect.report`` turns them into files.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from harness.backends import capabilities
from harness.bisect.oracle import Oracle, Step
from harness.bisect.phases import (
    Check, check_accuracy, check_output_format, check_prompt_identity, check_reference_score,
    interpret_fake_quant, interpret_ladder, interpret_nccl, interpret_unquantized, next_steps,
)
from harness.bisect.plan import Plan, allreduce_transforms
from harness.bisect.search import FAIL, PASS, run_search
from harness.config import config_diff, config_hash, deep_merge, resolve
from harness.evaluation.spec import EvalResult, EvalSpec

AA_BATCH_SIZES = [16, 8, 4, 2, 1, 31, 30, 29, 28, 27]  # A/A repeats differ from the reference run only in batching


def _score(res: EvalResult | None):
    return None if res is None else (res.metrics or {}).get("score")


class Bisector:
    def __init__(self, inp, plan: Plan, runner, run_dir: Path, compare=None, classify=None):
        self.inp = inp
        self.plan = plan
        self.runner = runner
        self.run_dir = Path(run_dir)
        self.cat = inp.catalogue
        self.user = inp.user_config
        self.full = resolve(self.cat, self.user)
        self.minimal_user = plan.config(self.user, ())
        self.minimal = resolve(self.cat, self.minimal_user)
        self._compare_fn = compare
        self._classify_fn = classify
        self.noise = None
        self.phases: dict = {}
        self.results: dict[str, EvalResult] = {}  # role -> result (reference, candidate, ...)
        self.warnings: list[str] = []
        self.outcome = None
        self.headline = ""
        self.culprits: list[dict] = []
        self.search_result = None
        self.t0 = time.monotonic()
        takes_ws = capabilities(inp.backend_ref).takes_world_size
        ref_cfg = {"world_size": plan.world_size} if takes_ws and plan.world_size > 1 else {}
        self.ref_spec = EvalSpec(backend=inp.backend_ref, model=inp.model, task=inp.task, config=ref_cfg,
                                 dataset=inp.dataset, samples=inp.samples, seed=inp.seed,
                                 prompt_options=dict(inp.prompt_options), label=f"reference {inp.backend_ref}")
        self.oracle = self._make_oracle(self.ref_spec)
        self.specs: dict[str, EvalSpec] = {"reference": self.ref_spec}
        self._available = None
        self._search_memo: dict[tuple, str] = {}
        self._judged: dict[tuple, Step] = {}  # (config hash, model, samples, oracle) -> first judgement

    # ---------------------------------------------------------------------------- plumbing
    def _make_oracle(self, ref_spec: EvalSpec) -> Oracle:
        return Oracle(self.runner, ref_spec, self._compare, available=self.available, on_step=None)

    @property
    def trail(self) -> list[Step]:
        return self.oracle.steps

    def _compare(self, ref_records, cand_records):
        if self._compare_fn is not None:
            return self._compare_fn(ref_records, cand_records, noise=self.noise)
        from harness.comparison.verdict import VerdictOptions, compare_runs

        return compare_runs(ref_records, cand_records, noise=self.noise,
                            options=VerdictOptions(alpha=self.inp.alpha, min_effect=self.inp.min_effect,
                                                   on_invalid="unresolved"),
                            labels=(self.inp.backend_ref, self.inp.backend))

    def available(self) -> int | None:
        """How many samples the data set holds (for escalating an inconclusive step)."""
        if self._available is None:
            from harness.evaluation.spec import build_samples

            try:
                _, samples = build_samples(replace(self.ref_spec, samples=None))
                self._available = len(samples)
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

    def cand_spec(self, user_cfg: dict, label: str, model: str | None = None, samples: int | None = None) -> EvalSpec:
        return EvalSpec(backend=self.inp.backend, model=model or self.inp.model, task=self.inp.task,
                        config=user_cfg, dataset=self.inp.dataset,
                        samples=self.inp.samples if samples is None else samples, seed=self.inp.seed,
                        prompt_options=dict(self.inp.prompt_options), plugins=list(self.inp.plugins),
                        label=label)

    def judge(self, user_cfg: dict, phase: str, purpose: str, on=None, base: str = "minimal", model=None,
              oracle: Oracle | None = None, result=None) -> Step:
        target = resolve(self.cat, user_cfg)
        if base == "auto":  # the shorter description: vs minimal or vs full
            d_min, d_full = config_diff(self.minimal, target), config_diff(self.full, target)
            base, diff = ("minimal", d_min) if len(d_min) <= len(d_full) else ("full", d_full)
        else:
            diff = config_diff({"minimal": self.minimal, "full": self.full}.get(base, self.full), target)
        spec = self.cand_spec(user_cfg, f"{phase}: {purpose}", model=model)
        o = oracle or self.oracle
        memo_key = (config_hash(target), spec.model, spec.samples, id(o))
        prev = self._judged.get(memo_key)
        if prev is not None:  # judged earlier in this run: the same verdict, no second evaluation
            import copy

            step = copy.copy(prev)
            step.phase, step.purpose, step.on = phase, purpose, list(on) if on is not None else None
            step.diff_base, step.config_diff, step.cached, step.seconds = base, diff, True, 0.0
            step.warnings = list(prev.warnings)
            object.__setattr__(step, "_result", o.result_of(prev))
            o.record(step)
            return step
        step = o.judge(spec, phase, purpose, on=on, diff_base=base, config_diff=diff, result=result)
        step.config_hash = config_hash(target)
        self._check_effects(step, target)
        self._judged[memo_key] = step
        return step

    def reference_step(self, spec: EvalSpec, phase: str, purpose: str, oracle: Oracle | None = None) -> tuple[Step, EvalResult]:
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

    # ---------------------------------------------------------------------------- phases
    def run(self) -> dict:
        from harness.bisect.search import expected_probes

        if hasattr(self.runner, "plan"):  # the done/planned counter: the expected run for one culprit
            self.runner.plan(3 + self.inp.aa_repeats + (expected_probes(self.plan.strategy, len(self.plan.knobs))
                                                        ["one_culprit"] if self.plan.knobs else 0))
        if not self.phase0():
            return self.finish()
        verdict = self.phase1()
        if verdict != "regressed":
            self.phase5()
            return self.finish()
        self.start_phase5_background()

        minimal_verdict = self.phase3()
        if minimal_verdict == "regressed":
            self.outcome = "core_path"
            self.headline = ("the minimal config still regresses: a core-path bug (weight loading, attention, "
                             "KV cache), not an optional transform")
        elif minimal_verdict in ("same", "improved"):
            self.search()
            self.phase6()
        else:
            self.outcome = "unexplained"
            self.headline = f"the minimal config is {minimal_verdict}: no passing baseline to search from"
        if self.plan.quantized:
            self.phase4a()
        if self.plan.world_size > 1:
            self.phase4c()
        self.phase5()
        return self.finish()

    # Phase 0 -----------------------------------------------------------------------------
    def _likely_specs(self) -> list[EvalSpec]:
        """Specs the next phases will probably evaluate: full, minimal and the search's first probes."""
        specs = [self.cand_spec(self.user, "full"), self.cand_spec(self.minimal_user, "minimal")]
        names = self.plan.knob_names
        sets = []
        if self.plan.strategy == "linear":
            sets = [[n] for n in names]
        elif len(names) > 1:
            half = (len(names) + 1) // 2
            c1, c2 = names[:half], names[half:]
            sets = [c1, c1[:(len(c1) + 1) // 2], c2[:(len(c2) + 1) // 2]]
        for on in sets:
            specs.append(self.cand_spec(self.plan.config(self.user, self.plan.closure(on)), "probe"))
        return specs

    def _prefetch_keys(self):
        """Compute likely cache keys in a thread while the reference runs in its worker process (the main
        thread only waits then); joined before the main thread computes keys again."""
        import threading

        if getattr(self.runner, "executor", None) is None or getattr(self.inp, "executor", "local") == "inprocess":
            return None

        def work():
            for spec in self._likely_specs():
                try:
                    self.runner.key(spec)
                except Exception:  # noqa: BLE001 - a prefetch only; the real call reports errors
                    return

        t = threading.Thread(target=work, name="harness-prefetch-keys", daemon=True)
        t.start()
        return t

    def phase0(self) -> bool:
        self.phase("phase 0: validate the harness")
        full_spec = self.cand_spec(self.user, "1: full candidate config")
        if self.runner.max_parallel > 1:  # reference and candidate together
            self.runner.evaluate_many([self.ref_spec, full_spec])
        prefetch = None
        if hasattr(self.runner, "key"):
            self.runner.key(self.ref_spec)
            prefetch = self._prefetch_keys()
        ref_step, ref = self.reference_step(self.ref_spec, "0", f"reference run ({self.inp.backend_ref})")
        if prefetch is not None:
            prefetch.join()
        self.oracle._refs[self.ref_spec.samples] = ref
        self.results["reference"] = ref
        checks: list[Check] = []
        info: dict = {"reference_step": ref_step.index, "reference_score": _score(ref), "n": len(ref.records)}
        if ref.status != "ok":
            checks.append(Check("reference run", False, f"the reference backend {self.inp.backend_ref} failed twice: "
                                f"{ref.error}"))
            return self._end_phase0(checks, info)
        # the candidate's prompts and token ids (Phase 1's evaluation, reused there from the store)
        cand, attempts = self.oracle.run(full_spec)
        self.results["candidate"] = cand
        self._cand_run = (cand, attempts)
        if cand.status == "ok":
            checks.append(check_prompt_identity(ref.records, cand.records))
        else:
            checks.append(Check("prompt identity", True, "not checked: the candidate run is unresolved "
                                "(see Phase 1)", warn=True))
        checks.append(check_output_format(ref.records, self.inp.backend_ref))
        checks.append(check_accuracy(ref.records, self.inp.task, _score(ref)))
        if self.inp.reference_score is not None and _score(ref) is not None:
            checks.append(check_reference_score(_score(ref), len(ref.records), self.inp.reference_score,
                                                self.inp.reference_source or "given", sigma=self.inp.reference_sigma))
        if self.inp.aa_repeats and all(c.ok for c in checks):
            info["aa"] = self.aa_noise(ref)
        return self._end_phase0(checks, info)

    def _end_phase0(self, checks: list[Check], info: dict) -> bool:
        ok = all(c.ok for c in checks)
        self.phases["0"] = {"ok": ok, "checks": [c.to_dict() for c in checks], **info}
        if not ok:
            self.outcome = "harness_suspect"
            bad = [c for c in checks if not c.ok]
            self.headline = "the harness itself is suspect: " + "; ".join(f"{c.name}: {c.detail}" for c in bad)
        return ok

    def aa_noise(self, ref: EvalResult) -> dict:
        comps, rows = [], []
        for i in range(self.inp.aa_repeats):
            bs = AA_BATCH_SIZES[i % len(AA_BATCH_SIZES)]
            spec = replace(self.ref_spec, sampling={**self.ref_spec.sampling, "batch_size": bs},
                           label=f"A/A repeat {i + 1} (batch size {bs})")
            step, res = self.reference_step(spec, "0", f"A/A repeat {i + 1} of the reference (batch size {bs})")
            if res.status != "ok":
                rows.append({"repeat": i + 1, "batch_size": bs, "status": res.status})
                continue
            comp = self._compare_plain(ref.records, res.records)
            comps.append(comp)
            step.verdict = comp.verdict
            rows.append({"repeat": i + 1, "batch_size": bs, "verdict": comp.verdict, "score": _score(res)})
        self.noise = comps or None
        from harness.comparison.verdict import NoiseFloor

        floor = NoiseFloor.from_any(comps) if comps else None
        return {"repeats": rows, "floor": floor.to_dict() if floor else None}

    def _compare_plain(self, ref_records, cand_records):
        saved, self.noise = self.noise, None
        try:
            return self._compare(ref_records, cand_records)
        finally:
            self.noise = saved

    # Phases 1-2 --------------------------------------------------------------------------
    def phase1(self) -> str:
        self.phase("phase 1-2: candidate vs reference")
        step = self.judge(self.user, "1", "full candidate config", base="full",
                          result=getattr(self, "_cand_run", None))
        self.decisive_step = step
        self.specs["candidate"] = self.cand_spec(self.user, "1: full candidate config", samples=step.escalated_to)
        res = self.oracle.result_of(step)
        if res is not None and res.status == "ok":
            self.results["candidate"] = res
        if step.escalated_to:
            self.results["reference"] = self.oracle._refs.get(step.escalated_to, self.results["reference"])
            self.specs["reference"] = replace(self.ref_spec, samples=step.escalated_to)
        self.phases["1"] = {"step": step.index, "verdict": step.verdict, "score_ref": step.ref_score,
                            "score_cand": step.score, "n": step.n, "escalated_to": step.escalated_to,
                            "comparison": step.comparison, "summary": step.summary}
        self.phases["2"] = self.classify()
        v = step.verdict
        if v != "regressed":
            self.outcome = v
            self.headline = {
                "same": f"no regression: {self.inp.backend} matches {self.inp.backend_ref} on {step.n} paired samples",
                "improved": f"{self.inp.backend} scores better than {self.inp.backend_ref}",
                "inconclusive": f"inconclusive on {step.n} paired samples: not enough evidence either way",
                "unresolved": f"the candidate config crashed or hung twice: {step.error}",
            }.get(v, v)
        return v

    def classify(self) -> dict:
        ref, cand = self.results.get("reference"), self.results.get("candidate")
        if cand is None or cand.status != "ok":
            return {"label": None, "note": "no candidate records"}
        fn = self._classify_fn
        if fn is None:
            try:
                from harness.analysis.classify import classify as fn
            except ImportError:
                return {"label": None, "note": "harness.analysis.classify not available"}
        try:
            try:
                c = fn(cand.records, reference_records=ref.records if ref is not None else None, task=self.inp.task)
            except TypeError:  # a classify without the task keyword
                c = fn(cand.records, reference_records=ref.records if ref is not None else None)
        except Exception as exc:  # noqa: BLE001 - a label is a nicety; never lose the bisect over it
            return {"label": None, "note": f"classification failed: {type(exc).__name__}: {exc}"}
        d = c.to_dict() if hasattr(c, "to_dict") else dict(vars(c))
        return {"label": d.get("label"), "evidence": d.get("evidence"), "next_step": d.get("next_step"),
                "detail": d}

    # Phase 3 -----------------------------------------------------------------------------
    def phase3(self) -> str:
        self.phase("phase 3: strip to minimal")
        step = self.judge(self.minimal_user, "3", "minimal config (every strippable knob off)", on=[], base="full")
        self.phases["3"] = {"step": step.index, "verdict": step.verdict, "score": step.score,
                            "stripped": [k.name for k in self.plan.togglable], "config": self.minimal_user,
                            "core_path_bug": step.verdict == "regressed"}
        return step.verdict

    # search ------------------------------------------------------------------------------
    def _search_oracle(self, on, purpose: str) -> str:
        names = self.plan.closure(on)
        if names in self._search_memo:
            return self._search_memo[names]
        step = self.judge(self.plan.config(self.user, names), "search", purpose, on=names, base="auto")
        self._search_memo[names] = step.outcome
        return step.outcome

    def _search_batch(self, sets, purposes) -> list[str]:
        if self.runner.max_parallel > 1:
            specs = [self.cand_spec(self.plan.config(self.user, self.plan.closure(s)), p) for s, p in zip(sets, purposes)
                     if self.plan.closure(s) not in self._search_memo]
            self.runner.evaluate_many(specs)
        return [self._search_oracle(s, p) for s, p in zip(sets, purposes)]

    def search(self) -> None:
        names = self.plan.knob_names
        self.phase(f"search ({self.plan.strategy}, {len(names)} knobs)")
        self._search_memo[self.plan.closure(())] = PASS
        self._search_memo[self.plan.closure(names)] = FAIL
        res = run_search(self.plan.strategy, names, self._search_oracle, batch_oracle=self._search_batch,
                         requires=self.plan.requires)
        self.search_result = res
        self.culprits = [self._culprit(g) for g in res.culprits]
        self.phases["search"] = {**res.to_dict(), "steps": [s.index for s in self.trail if s.phase == "search"]}

    def _culprit(self, group: list[str]) -> dict:
        knobs = [self.plan.knob(n) for n in group]
        switched = [b for n in group for b in self.plan.bundles.get(n, [])]
        required = [r for n in group for r in self.plan.requires.get(n, []) if r not in group]
        return {"knobs": list(group), "kind": "interaction" if len(group) > 1 else "single",
                "categories": [k.category for k in knobs],
                "describe": [f"{k.name}={k.full} (minimal {k.minimal})" if k.kind != "transform"
                             else f"{k.name} ({k.category}, stage {k.stage})" for k in knobs],
                "with": required, "switches": switched, "confirmed": None}

    # Phase 6 -----------------------------------------------------------------------------
    def phase6(self) -> None:
        res = self.search_result
        if res is None or not res.culprits:
            self.outcome = "unexplained"
            sus = f" (untestable suspects: {', '.join(res.suspects)})" if res and res.suspects else ""
            self.headline = "the search found no culprit although the full config regresses and minimal does not" + sus
            self.phases["6"] = {"ran": False}
            return
        self.phase("phase 6: confirm both ways")
        allc = [n for g in res.culprits for n in g]
        per_group = []
        if len(res.culprits) > 1:
            for g in res.culprits:
                s = self.judge(self.plan.config(self.user, self.plan.closure(g)), "6", f"minimal + {', '.join(g)}",
                               on=self.plan.closure(g), base="minimal")
                per_group.append({"knobs": g, "step": s.index, "verdict": s.verdict})
        alone = []
        for g in res.culprits:  # an interaction: each member alone from minimal must NOT regress
            if len(g) > 1:
                for n in g:
                    on = self.plan.closure([n])
                    st = self.judge(self.plan.config(self.user, on), "6", f"minimal + {n} alone (pair member)",
                                    on=on, base="minimal")
                    alone.append({"knob": n, "group": g, "step": st.index, "verdict": st.verdict})
        rem = self.plan.without(allc)
        down = self.judge(self.plan.config(self.user, rem), "6", f"full - {', '.join(allc)}", on=rem, base="full")
        up_on = self.plan.closure(allc)
        up = self.judge(self.plan.config(self.user, up_on), "6", f"minimal + {', '.join(allc)}", on=up_on,
                        base="minimal")
        confirmed = down.outcome == PASS and up.outcome == FAIL
        for c, g in zip(self.culprits, res.culprits):
            pg = next((p for p in per_group if p["knobs"] == g), None)
            members_pass = all(a["verdict"] in ("same", "improved") for a in alone if a["group"] == g)
            c["confirmed"] = confirmed and (pg is None or pg["verdict"] == "regressed") and members_pass
            if len(g) > 1:
                c["members_alone"] = {a["knob"]: a["verdict"] for a in alone if a["group"] == g}
        confirmed = all(c["confirmed"] for c in self.culprits)
        self.phases["6"] = {"ran": True, "confirmed": confirmed,
                            "full_minus_culprits": {"step": down.index, "verdict": down.verdict, "score": down.score},
                            "minimal_plus_culprits": {"step": up.index, "verdict": up.verdict, "score": up.score},
                            "per_group": per_group, "members_alone": alone}
        names = " + ".join(", ".join(g) + (" (only together)" if len(g) > 1 else "") for g in res.culprits)
        self.outcome = "culprit" if confirmed else "unconfirmed"
        if confirmed:
            self.headline = f"culprit: {names} - confirmed both ways (full minus it recovers, minimal plus it regresses)"
        else:
            bad_alone = [a["knob"] for a in alone if a["verdict"] not in ("same", "improved")]
            self.headline = (f"suspect: {names} - NOT confirmed (full minus it: {down.verdict}; minimal plus it: "
                             f"{up.verdict}" + (f"; regresses alone too: {', '.join(bad_alone)}" if bad_alone else "")
                             + ")")

    # Phase 4a ----------------------------------------------------------------------------
    def phase4a(self) -> None:
        from harness.analysis.fake_quant import fake_quant_entries, fake_quant_overlay, render_fake_quant_yaml

        self.phase("phase 4a: quantization")
        out: dict = {"quant": self.inp.quant, "moe": self.inp.moe}
        entries, extra = fake_quant_entries(self.cat, self.user, self.inp.moe)
        text = render_fake_quant_yaml(self.cat, self.user, self.inp.moe, self.inp.config_path, self.inp.model)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "fake_quant_debug.yaml").write_text(text, encoding="utf-8")
        out["fake_quant_yaml"] = "fake_quant_debug.yaml"
        out["fake_quant_disabled"] = [n for n, _ in entries]
        out["fake_quant_skipped"] = extra
        if entries:
            s = self.judge(fake_quant_overlay(self.cat, self.user, self.inp.moe), "4a",
                           "fake-quant mode (quantization fusions off)", base="full")
            out["fake_quant"] = {"step": s.index, **interpret_fake_quant(s.verdict, len(entries))}
        else:
            out["fake_quant"] = interpret_fake_quant(None, 0)
        if self.inp.unquantized_model:
            uq_ref = replace(self.ref_spec, model=self.inp.unquantized_model, label="reference, unquantized model")
            o = self._make_oracle(uq_ref)
            o.steps = self.oracle.steps  # one trail
            rstep, rres = self.reference_step(uq_ref, "4a", "reference run on the unquantized model", oracle=o)
            o._refs[uq_ref.samples] = rres
            s = self.judge(self.user, "4a", "full candidate config on the unquantized model", base="full",
                           model=self.inp.unquantized_model, oracle=o)
            out["unquantized"] = {"step": s.index, "reference_step": rstep.index, **interpret_unquantized(s.verdict)}
        else:
            out["unquantized"] = {"kind": "not_run", "finding": "no --unquantized-model given: ask for a BF16/FP16 "
                                  "version of the model and rerun with --unquantized-model DIR (method 4a step 1)"}
        self.phases["4a"] = out

    # Phase 4c ----------------------------------------------------------------------------
    def phase4c(self) -> None:
        ws = self.plan.world_size
        ladder = [w for w in (1, 2) if w < ws] + [ws]
        ar = allreduce_transforms(self.full)
        nccl_applicable = any(v != "NCCL" for v in ar.values())
        self.phase("phase 4c: world size")
        verdicts, steps = {}, {}
        for w in ladder:
            cfg = self.user if w == ws else deep_merge(self.user, {"world_size": w})
            s = self.judge(cfg, "4c", f"full config at world_size {w}", base="full")
            verdicts[w], steps[str(w)] = s.verdict, s.index
        out = {"ladder_steps": steps, **interpret_ladder(verdicts, ws)}
        if nccl_applicable:
            over = {"transforms": {n: {"allreduce_strategy": "NCCL"} for n, v in ar.items() if v != "NCCL"}}
            s = self.judge(deep_merge(self.user, over), "4c", "allreduce_strategy: NCCL", base="full")
            out["nccl"] = {"step": s.index, **interpret_nccl(s.verdict, True, ar)}
        else:
            out["nccl"] = interpret_nccl(None, False, ar)
        self.phases["4c"] = out

    # Phase 5 -----------------------------------------------------------------------------
    def _breakdown_args(self):
        task_meta = {"multiple_choice": True} if self.inp.task == "mmlu" else None
        return task_meta, (self.inp.backend_ref, self.inp.backend)

    def start_phase5_background(self) -> None:
        """Start Phase 5's breakdown (tables, flags, plot) in a separate process - `python -m harness
        breakdown` on the decisive runs - so it runs on the idle core while the workers evaluate the
        search. A separate process, not a thread: the breakdown's statistics must not share the
        interpreter with other work (they came out different when they did). Local executors only."""
        import os
        import subprocess
        import sys

        ref, cand = self.results.get("reference"), self.results.get("candidate")
        if self.inp.executor == "inprocess" or ref is None or cand is None or "ok" != ref.status or "ok" != cand.status:
            return
        try:  # a rerun from the store has no evaluation to hide the breakdown behind: run it inline then
            store = getattr(self.runner, "store", None)
            if store is not None and self.inp.use_cache and \
                    store.get(self.runner.key(self.cand_spec(self.minimal_user, "minimal"))) is not None:
                return
        except Exception:  # noqa: BLE001 - only a scheduling hint
            pass
        try:
            from harness.paths import REPO_ROOT
            from harness.bisect.report import write_decisive

            self.run_dir.mkdir(parents=True, exist_ok=True)  # not made yet: the report is written last
            write_decisive(self.run_dir, self.results, self.specs)
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
            cmd = [sys.executable, "-m", "harness", "breakdown", str(self.run_dir / "decisive" / "reference"),
                   str(self.run_dir / "decisive" / "candidate"), "--out", str(self.run_dir / "breakdown"),
                   "--alpha", str(self.inp.alpha), "--json"]
            self._p5_proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        except Exception:  # noqa: BLE001 - Phase 5 then runs inline at the end
            self._p5_proc = None

    def _phase5_from_background(self) -> dict | None:
        import json
        import subprocess

        proc = getattr(self, "_p5_proc", None)
        if proc is None:
            return None
        try:
            out, _ = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return None
        if proc.returncode != 0:
            return None
        try:
            return json.loads(out)
        except ValueError:
            return None

    def phase5(self) -> None:
        ref, cand = self.results.get("reference"), self.results.get("candidate")
        if ref is None or cand is None or ref.status != "ok" or cand.status != "ok":
            self.phases["5"] = {"ran": False, "note": "no paired records"}
            return
        self.phase("phase 5: per-subject breakdown")
        from harness.analysis.breakdown import per_subject

        out = {"ran": True, "comparison": "reference vs full candidate (Phase 1)",
               "per_subject": per_subject(ref.records, cand.records)}
        bd_dir = self.run_dir / "breakdown"
        written = self._phase5_from_background()
        out["computed"] = "background" if written is not None else "inline"
        if written is None:
            try:
                from harness.analysis.breakdown import write_breakdown

                bd_dir.mkdir(parents=True, exist_ok=True)
                task_meta, labels = self._breakdown_args()
                written = write_breakdown(ref.records, cand.records, bd_dir, task_meta=task_meta,
                                          alpha=self.inp.alpha, labels=labels)
            except ImportError:
                out["note"] = "harness.analysis.breakdown not available; per-subject table only"
            except Exception as exc:  # noqa: BLE001 - the breakdown must not sink the bisect
                out["note"] = f"breakdown failed: {type(exc).__name__}: {exc}"
        if isinstance(written, dict):
            from harness.comparison.verdict import json_safe

            out["breakdown"] = json_safe({k: v for k, v in written.items()
                                          if isinstance(v, (str, int, float, list, dict))})
        if bd_dir.is_dir():
            out["files"] = sorted(str(p.relative_to(self.run_dir)) for p in bd_dir.rglob("*") if p.is_file())
        self.phases["5"] = out

    # finish ------------------------------------------------------------------------------
    def finish(self) -> dict:
        label_step = (self.phases.get("2") or {}).get("next_step")
        extra = []
        for key in ("4a", "4c"):
            ph = self.phases.get(key) or {}
            for sub in ("fake_quant", "unquantized", "nccl"):
                f = (ph.get(sub) or {}).get("finding")
                if f and (ph.get(sub) or {}).get("kind") not in ("not_applicable", "not_run"):
                    extra.append(f"Phase {key}: {f}")
            if ph.get("finding"):
                extra.append(f"Phase {key}: {ph['finding']}")
        self.next_steps = next_steps(self.outcome or "unexplained", self.culprits, label_step, extra)
        return {"outcome": self.outcome, "headline": self.headline, "culprits": self.culprits,
                "phases": self.phases, "trail": self.trail, "warnings": self.warnings,
                "next_steps": self.next_steps}
