"""Phase 0: validate the harness before judging AD (docs/method.md, "Phase 0").

The reference run; the full candidate's run (its prompts and token ids, reused by Phase 1 from the
store); then the checks of ``harness.bisect.checks``: prompt identity across backends, output
format, non-degenerate accuracy, the reference score (--reference-score / --references); and,
with --aa-repeats, A/A repeats of the reference that measure the noise floor. A failed check
ends the run: the harness itself is suspect.
"""
from __future__ import annotations

import threading
from dataclasses import replace

from harness.bisect.checks import (
    Check, check_accuracy, check_output_format, check_prompt_identity, check_reference_score,
)
from harness.bisect.context import BisectContext, score_of
from harness.bisect.protocol import describe as describe_protocols
from harness.bisect.protocol import reference_for_score
from harness.bisect.state import BisectState
from harness.evaluation.spec import EvalResult, EvalSpec

AA_BATCH_SIZES = [16, 8, 4, 2, 1, 31, 30, 29, 28, 27]  # A/A repeats differ from the reference run only in batching


def validate_harness(ctx: BisectContext, state: BisectState) -> bool:
    """Phase 0; False when the harness is suspect (the run stops there)."""
    ctx.phase("phase 0: validate the harness")
    full_spec = ctx.cand_spec(ctx.user, "1: full candidate config")
    ref_step, ref = _reference_run(ctx, full_spec)
    state.results["reference"] = ref
    info: dict = {"reference_step": ref_step.index, "reference_score": score_of(ref), "n": len(ref.records)}
    if ref.status != "ok":
        checks = [Check("reference run", False, f"the reference backend {ctx.inp.backend_ref} failed twice: "
                        f"{ref.error}")]
        return _end_phase0(state, checks, info)
    # the candidate's prompts and token ids (Phase 1's evaluation, reused there from the store)
    cand, attempts = ctx.oracle.run(full_spec)
    state.results["candidate"] = cand
    ctx.full_run = (cand, attempts)
    checks = _checks(ctx, ref, cand)
    info["protocols"] = ctx.protocols or describe_protocols(ctx.inp.reference_protocol, ctx.inp.task, False)
    if ctx.inp.aa_repeats and all(c.ok for c in checks):
        info["aa"] = aa_noise(ctx, ref)
    return _end_phase0(state, checks, info)


def _reference_run(ctx: BisectContext, full_spec: EvalSpec):
    """The reference run as the trail's first step (with the full candidate alongside when evaluations
    run in parallel); the likely next cache keys are computed meanwhile."""
    if ctx.runner.max_parallel > 1:  # reference and candidate together
        ctx.runner.evaluate_many([ctx.ref_spec, full_spec])
    prefetch = None
    if hasattr(ctx.runner, "key"):
        ctx.runner.key(ctx.ref_spec)
        prefetch = _prefetch_keys(ctx)
    ref_step, ref = ctx.reference_step(ctx.ref_spec, "0", f"reference run ({ctx.inp.backend_ref})")
    if prefetch is not None:
        prefetch.join()
    ctx.oracle._refs[ctx.ref_spec.samples] = ref
    return ref_step, ref


def _checks(ctx: BisectContext, ref: EvalResult, cand: EvalResult) -> list[Check]:
    inp = ctx.inp
    checks: list[Check] = []
    if cand.status == "ok":
        checks.append(check_prompt_identity(ref.records, cand.records))
    else:
        checks.append(Check("prompt identity", True, "not checked: the candidate run is unresolved "
                            "(see Phase 1)", warn=True))
    checks.append(check_output_format(ref.records, inp.backend_ref))
    checks.append(check_accuracy(ref.records, inp.task, score_of(ref)))
    if inp.reference_score is not None and score_of(ref) is not None:
        scored = reference_for_score(ctx, ref)  # the accuracy_core protocol run when it differs (protocol.py)
        checks.append(check_reference_score(score_of(scored), len(scored.records), inp.reference_score,
                                            inp.reference_source or "given", sigma=inp.reference_sigma,
                                            alpha=inp.reference_alpha))
    return checks


def _end_phase0(state: BisectState, checks: list[Check], info: dict) -> bool:
    ok = all(c.ok for c in checks)
    state.phases["0"] = {"ok": ok, "checks": [c.to_dict() for c in checks], **info}
    if not ok:
        bad = [c for c in checks if not c.ok]
        state.conclude("harness_suspect", "the harness itself is suspect: "
                       + "; ".join(f"{c.name}: {c.detail}" for c in bad))
    return ok


def aa_noise(ctx: BisectContext, ref: EvalResult) -> dict:
    """A/A repeats of the reference (batch size varied): their verdicts, and the noise floor
    (``ctx.noise``) every later comparison is judged against."""
    comps, rows = [], []
    for i in range(ctx.inp.aa_repeats):
        bs = AA_BATCH_SIZES[i % len(AA_BATCH_SIZES)]
        spec = replace(ctx.ref_spec, sampling={**ctx.ref_spec.sampling, "batch_size": bs},
                       label=f"A/A repeat {i + 1} (batch size {bs})")
        step, res = ctx.reference_step(spec, "0", f"A/A repeat {i + 1} of the reference (batch size {bs})")
        if res.status != "ok":
            rows.append({"repeat": i + 1, "batch_size": bs, "status": res.status})
            continue
        comp = ctx.compare_plain(ref.records, res.records)
        comps.append(comp)
        step.verdict = comp.verdict
        rows.append({"repeat": i + 1, "batch_size": bs, "verdict": comp.verdict, "score": score_of(res)})
    ctx.noise = comps or None
    from harness.comparison.verdict import NoiseFloor

    floor = NoiseFloor.from_any(comps) if comps else None
    return {"repeats": rows, "floor": floor.to_dict() if floor else None}


# -- cache-key prefetch --------------------------------------------------------------------------
def _likely_specs(ctx: BisectContext) -> list[EvalSpec]:
    """Specs the next phases will probably evaluate: full, minimal and the search's first probes."""
    plan = ctx.plan
    specs = [ctx.cand_spec(ctx.user, "full"), ctx.cand_spec(ctx.minimal_user, "minimal")]
    names = plan.knob_names
    sets = []
    if plan.strategy == "linear":
        sets = [[n] for n in names]
    elif len(names) > 1:
        half = (len(names) + 1) // 2
        c1, c2 = names[:half], names[half:]
        sets = [c1, c1[:(len(c1) + 1) // 2], c2[:(len(c2) + 1) // 2]]
    for on in sets:
        specs.append(ctx.cand_spec(plan.config(ctx.user, plan.closure(on)), "probe"))
    return specs


def _prefetch_keys(ctx: BisectContext):
    """Compute likely cache keys in a thread while the reference runs in its worker process (the main
    thread only waits then); joined before the main thread computes keys again."""
    if getattr(ctx.runner, "executor", None) is None or getattr(ctx.inp, "executor", "local") == "inprocess":
        return None

    def work():
        for spec in _likely_specs(ctx):
            try:
                ctx.runner.key(spec)
            except Exception:  # noqa: BLE001 - a prefetch only; the real call reports errors
                return

    t = threading.Thread(target=work, name="harness-prefetch-keys", daemon=True)
    t.start()
    return t
