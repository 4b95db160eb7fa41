"""The worker: one evaluation spec in this process, its result written atomically.

``python -m harness.execution.worker --spec spec.json --out result.json`` is what the executor
launches in a fresh process per evaluation (and what the fork server runs in each forked child);
``python -m harness worker`` is the same thing behind the full CLI. It reads an EvalSpec (JSON of
``EvalSpec.to_dict()``), runs ``harness.evaluation.run.run_evaluation`` and writes
``EvalResult.to_dict()`` to --out. Bad input (HarnessError) is written as
``{"harness_error": message}`` and the process exits 2 after printing ``error: message``. Any other
failure (crash, exception, kill) leaves no result file; the executor reports it as ``unresolved``
with the log tail.

Testing hook: ``HARNESS_EXTRA_BACKENDS="name=module:Class[,name2=module:Class]"`` (and
``HARNESS_EXTRA_TASKS`` likewise) registers extra backends / tasks in the worker and in-process;
the tests use it to plant a backend that segfaults or hangs.
"""
from __future__ import annotations

import json
import os
import sys
import time

from harness.errors import HarnessError
from harness.jsonio import write_json_atomic


def register_extra_backends(env=None) -> None:
    """Honour the HARNESS_EXTRA_BACKENDS / HARNESS_EXTRA_TASKS testing hooks."""
    env = os.environ if env is None else env
    from harness import backends, tasks

    for var, registry in (("HARNESS_EXTRA_BACKENDS", backends.BACKENDS), ("HARNESS_EXTRA_TASKS", tasks.TASKS)):
        for item in filter(None, (x.strip() for x in env.get(var, "").split(","))):
            name, _, target = item.partition("=")
            if not target or ":" not in target:
                raise HarnessError(f"{var} entry {item!r} must look like name=module:Class.")
            registry[name.strip()] = target.strip()


def die_with_parent(parent: int | str | None = None) -> None:
    """Linux: this process is killed when the orchestrator that launched it dies (even by SIGKILL),
    so a killed-then-resumed bisect does not leave orphan workers competing for the CPU. ``parent``:
    the orchestrator's pid (default: $HARNESS_PARENT_PID)."""
    parent = parent or os.environ.get("HARNESS_PARENT_PID")
    if not parent or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except Exception:  # noqa: BLE001 - best effort
        return
    if str(os.getppid()) != str(parent):  # the parent died before prctl took effect
        os._exit(1)


def evaluate_spec_file(spec_path: str, out_path: str, started: float, mode: str = "subprocess") -> None:
    """Read the spec, run it, write the result atomically. HarnessError: written as
    ``{"harness_error": ...}`` and re-raised. Shared by the worker process and the fork server."""
    from harness.evaluation.run import run_evaluation
    from harness.evaluation.spec import EvalSpec

    try:
        register_extra_backends()
        with open(spec_path, encoding="utf-8") as f:
            spec = EvalSpec.from_dict(json.load(f))
        result = run_evaluation(spec)
    except HarnessError as exc:
        write_json_atomic(out_path, {"harness_error": str(exc)})
        raise
    launched = os.environ.get("HARNESS_LAUNCH_TIME")
    result.info = dict(result.info or {})
    result.info["worker"] = {
        "pid": os.getpid(),
        "python": sys.executable,
        "mode": mode,
        "startup_s": round(started - float(launched), 3) if launched else None,
    }
    write_json_atomic(out_path, result.to_dict())


def add_arguments(parser) -> None:
    parser.add_argument("--spec", required=True, help="EvalSpec JSON file (EvalSpec.to_dict()).")
    parser.add_argument("--out", required=True, help="Where to write the EvalResult JSON (atomically).")


def run(spec_path: str, out_path: str) -> int:
    started = time.time()
    die_with_parent()
    evaluate_spec_file(spec_path, out_path, started)
    # The result is on disk: skip interpreter teardown (torch/engine destructors can take a second
    # or hang on a broken engine); the executor only needs the exit status.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.execution.worker``: the worker without building the whole CLI (so a
    broken or slow-to-import command module can never turn every evaluation into a crash)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m harness.execution.worker", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args.spec, args.out)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
