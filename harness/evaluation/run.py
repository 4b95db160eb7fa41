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
    info.update(truncation_info(completions, info, sampling))
    return EvalResult(status="ok", records=records, info=info, metrics=task.aggregate(records))


def truncation_info(completions, info: dict, sampling) -> dict:
    """How many prompts the engine truncated to ``truncate_prompt_tokens`` (the report counts them): the
    completions' own flags (hf, ad-emulator), else the engine's count (TensorRT-LLM: prompts that reached
    the limit, harness/backends/trtllm/common.py)."""
    flags = [c.extra["prompt_truncated"] for c in completions if "prompt_truncated" in (c.extra or {})]
    n = sum(map(bool, flags)) if flags else ((info.get("generation") or {}).get("truncated_prompts") or 0)
    return {"truncate_prompt_tokens": sampling.truncate_prompt_tokens, "truncated_prompts": int(n)}


def truncation_note(info: dict, n_prompts: int, who: str = "") -> str | None:
    """One line saying how many prompts were truncated and how (None when none were)."""
    n = int((info or {}).get("truncated_prompts") or 0)
    if not n:
        return None
    limit = info.get("truncate_prompt_tokens")
    return (f"{n} of {n_prompts} prompts{' of ' + who if who else ''} were longer than truncate_prompt_tokens={limit} "
            "(the task's limit, capped at the model's positions minus the answer tokens) and were truncated as "
            "TensorRT-LLM's input processor truncates them (truncation=True, max_length; the tokenizer's "
            "truncation_side decides which end is cut)")
