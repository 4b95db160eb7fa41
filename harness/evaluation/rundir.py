"""Run directories: ``reports/<YYYYmmdd-HHMMSS>-<label>/`` with ``samples.jsonl`` and ``run.json``.

``samples.jsonl`` holds one record per sample (``harness.evaluation.records``); ``run.json`` holds what the
run was (model, backend, config, task, data set, samples, seed, prompt options, sampling), how it
ended (status, error, log tail), the task metrics, engine info/versions and timings.  Both files
are written atomically (temp file + rename), run.json last, so a directory with a run.json is
complete.

A run directory written under a fixed name (bisect's ``bisect-<model>-<task>-<hash>``, which a
rerun or a concurrent identical run writes again) is built in a staging directory
(``staging_dir``) and published whole (``publish_run_dir``: one atomic exchange on Linux), so a
reader sees the previous run directory or the new one, never a mix, and a run killed or failing
half-way (a full disk) leaves the previous one untouched. ``check_out_dir`` checks an output
root before any evaluation.
"""
from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import time
from pathlib import Path

from harness.errors import HarnessError
from harness.evaluation.records import read_records, write_records

RUN_JSON = "run.json"
SAMPLES_JSONL = "samples.jsonl"


def _slug(label: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", label or "run").strip("-.")
    return s[:80] or "run"


def new_run_dir(out_root: str | Path, label: str) -> Path:
    """Create and return ``out_root/<YYYYmmdd-HHMMSS>-<label>`` (``-2``, ``-3``... if taken)."""
    root = Path(out_root)
    root.mkdir(parents=True, exist_ok=True)
    base = f"{time.strftime('%Y%m%d-%H%M%S')}-{_slug(label)}"
    for i in range(1, 10000):
        path = root / (base if i == 1 else f"{base}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise HarnessError(f"could not create a run directory under {root}; remove old runs or pass --out <dir>")


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _write_json_atomic(path: Path, obj) -> None:
    from harness.jsonio import atomic_write

    with atomic_write(path) as f:
        json.dump(_json_safe(obj), f, indent=2, sort_keys=False, default=str, ensure_ascii=False)
        f.write("\n")


def check_out_dir(out: str | Path) -> Path:
    """An output root that exists and takes a file, checked before any evaluation; else one line."""
    p = Path(out).expanduser()
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = p / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise HarnessError(f"output directory {str(out)!r} is not writable ({exc.strerror or exc}); pass --out "
                           "with a directory you can write to") from None
    return p


def staging_dir(final: str | Path) -> Path:
    """A fresh, empty ``.<name>.<pid>.partial`` beside ``final`` to build it in (see ``publish_run_dir``);
    what killed runs left there (their process is gone) is removed first."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    for left in final.parent.glob(f".{final.name}.*.partial"):
        pid = left.name[len(final.name) + 2:-len(".partial")]
        if not pid.isdigit() or not _pid_alive(int(pid)):
            shutil.rmtree(left, ignore_errors=True)
    d = final.parent / f".{final.name}.{os.getpid()}.partial"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    return d


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where that is unavailable."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    return renameat2(AT_FDCWD, os.fsencode(str(a)), AT_FDCWD, os.fsencode(str(b)), RENAME_EXCHANGE) == 0


def publish_run_dir(staging: str | Path, final: str | Path) -> Path:
    """Make the finished ``staging`` directory ``final``: exchanged with an existing ``final`` in one step
    where the OS can (the old one is then removed), else renamed into place (a concurrent identical
    run publishing at the same moment: the last one wins, each directory whole)."""
    staging, final = Path(staging), Path(final)
    for _ in range(20):
        if final.exists() and _exchange(staging, final):
            shutil.rmtree(staging, ignore_errors=True)
            return final
        try:
            os.rename(staging, final)
            return final
        except OSError as exc:  # final exists and is not empty, and no exchange here: move it aside first
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise HarnessError(f"could not publish the run directory {final}: {exc.strerror}; its content is "
                                   f"in {staging}") from None
            old = final.with_name(f".{final.name}.{os.getpid()}.old")
            try:
                os.rename(final, old)
            except FileNotFoundError:
                continue
            shutil.rmtree(old, ignore_errors=True)
    raise HarnessError(f"could not publish the run directory {final} (another run kept replacing it); its "
                       f"content is in {staging}")


def run_summary(spec, result, extra: dict | None = None) -> dict:
    """The run.json content for an EvalSpec and EvalResult (objects or dicts)."""
    s = spec.to_dict() if hasattr(spec, "to_dict") else dict(spec)
    r = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    info = dict(r.get("info") or {})
    import platform

    from harness import __version__

    versions = {"harness": __version__, "python": platform.python_version()}
    for k in ("torch", "transformers", "tensorrt_llm", "lm_eval"):
        if info.get(k):
            versions[k] = info[k]
    out = {
        "label": s.get("label"),
        "model": s.get("model"),
        "backend": s.get("backend"),
        "task": s.get("task"),
        "dataset": s.get("dataset"),
        "samples": s.get("samples"),
        "seed": s.get("seed"),
        "config": s.get("config"),
        "plugins": s.get("plugins"),
        "prompt_options": s.get("prompt_options"),
        "sampling": info.pop("sampling", None) or s.get("sampling"),
        "sample_ids": s.get("sample_ids"),
        "status": r.get("status"),
        "error": r.get("error"),
        "log_tail": r.get("log_tail"),
        "metrics": r.get("metrics"),
        "n_records": len(r.get("records") or []),
        "timings": info.pop("timings", None),
        "versions": versions,
        "info": info,
        "spec": s,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if extra:
        out.update(extra)
    return out


def write_run(run_dir: str | Path, spec, result, extra: dict | None = None) -> Path:
    """Write samples.jsonl and run.json (atomically, run.json last); returns the run.json path."""
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    records = result.records if hasattr(result, "records") else (result.get("records") or [])
    write_records(d / SAMPLES_JSONL, records)
    path = d / RUN_JSON
    _write_json_atomic(path, run_summary(spec, result, extra))
    return path


def read_run(run_dir: str | Path) -> tuple[dict, list[dict]]:
    """(run.json dict, records) of a run directory; HarnessError naming what is missing."""
    d = Path(run_dir)
    if not d.is_dir():
        raise HarnessError(f"run directory {str(d)!r} does not exist; pass a directory written by "
                           f"`python -m harness diagnose` (reports/<timestamp>-<label>)")
    run_path = d / RUN_JSON
    if not run_path.is_file():
        raise HarnessError(f"{str(d)!r} has no {RUN_JSON}; it is not a finished run directory (re-run the "
                           f"evaluation or pass another directory)")
    try:
        with open(run_path, encoding="utf-8") as f:
            run = json.load(f)
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{run_path} is not valid JSON (line {exc.lineno}); re-run the evaluation") from None
    samples_path = d / SAMPLES_JSONL
    if not samples_path.is_file():
        raise HarnessError(f"{str(d)!r} has no {SAMPLES_JSONL}; re-run the evaluation that wrote it")
    try:
        records = read_records(samples_path)
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{samples_path} line {exc.lineno} is not valid JSON; re-run the evaluation") from None
    return run, records
