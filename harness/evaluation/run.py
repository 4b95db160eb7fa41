"""Run one evaluation in this process: load the engine, generate for every prompt in one call,
score each completion into a per-sample record.

The worker (``harness/execution/worker.py``) and ``diagnose`` call it; the executor runs it in a
fresh worker process so that a crash or hang becomes an ``unresolved`` result.
"""
from __future__ import annotations

import time
import traceback

from harness.backends import get_backend
from harness.backends.progress import quiet_library_progress
from harness.errors import HarnessError
from harness.evaluation.records import make_record
from harness.evaluation.spec import EvalResult, EvalSpec, build_samples, sampling_for


def run_evaluation(spec: EvalSpec, context: dict | None = None) -> EvalResult:
    """Run one evaluation in this process. Backend failures become an ``unresolved`` result."""

    t0 = time.time()
    quiet_library_progress()  # the harness reports per-sample progress itself (harness/backends/progress.py)
    task, samples = build_samples(spec)
    sampling = sampling_for(task, spec)
    backend = get_backend(spec.backend)
    ctx = dict(context or {})
    ctx.setdefault("plugins", list(spec.plugins))
    timings = {"prompts_s": time.time() - t0}
    try:
        t1 = time.time()
        with backend.open(spec.model, spec.config, ctx) as engine:
            timings["load_s"] = time.time() - t1
            t2 = time.time()
            completions = engine.generate([s.prompt for s in samples], sampling)
            timings["generate_s"] = time.time() - t2
            info = engine.info()
    except Exception as exc:  # noqa: BLE001 - an engine failure is a result, not a harness crash
        if isinstance(exc, HarnessError):
            raise
        return EvalResult(
            status="unresolved",
            error=f"{type(exc).__name__}: {exc}",
            log_tail=traceback.format_exc()[-4000:],
            info={"timings": timings},
        )
    records = []
    for sample, comp in zip(samples, completions):
        records.append(make_record(sample, comp, task.score(sample, comp.text)))
    info = dict(info)
    info["timings"] = {**timings, "total_s": time.time() - t0}
    info["sampling"] = sampling.to_dict()
    return EvalResult(status="ok", records=records, info=info, metrics=task.aggregate(records))
