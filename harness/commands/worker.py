"""`python -m harness worker --spec spec.json --out result.json`: one evaluation, this process.

The executor launches this in a fresh process per evaluation. It reads an EvalSpec (JSON of
``EvalSpec.to_dict()``), runs ``harness.evaluate.run_evaluation`` and writes
``EvalResult.to_dict()`` to --out atomically. Bad input (HarnessError) is written as
``{"harness_error": message}`` and the process exits 2 after printing ``error: message``.
Any other failure (crash, exception, kill) leaves no result file; the executor reports it as
``unresolved`` with the log tail.
"""
from __future__ import annotations

import json
import os
import sys
import time


def add_arguments(parser) -> None:
    parser.add_argument("--spec", required=True, help="EvalSpec JSON file (EvalSpec.to_dict()).")
    parser.add_argument("--out", required=True, help="Where to write the EvalResult JSON (atomically).")


def _die_with_parent() -> None:
    """Linux: the worker is killed when the orchestrator that launched it dies (even by SIGKILL),
    so a killed-then-resumed bisect does not leave orphan workers competing for the CPU."""
    parent = os.environ.get("HARNESS_PARENT_PID")
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
    if str(os.getppid()) != parent:  # the parent died before prctl took effect
        os._exit(1)


def evaluate_spec_file(spec_path: str, out_path: str, started: float, mode: str = "subprocess") -> None:
    """Read the spec, run it, write the result atomically. HarnessError: written as
    ``{"harness_error": ...}`` and re-raised. Shared by this command and the fork server."""
    from harness.errors import HarnessError
    from harness.evaluate import EvalSpec, run_evaluation
    from harness.executor import register_extra_backends, write_json_atomic

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


def run(args) -> int:
    started = time.time()
    _die_with_parent()
    evaluate_spec_file(args.spec, args.out, started)
    # The result is on disk: skip interpreter teardown (torch/engine destructors can take a second
    # or hang on a broken engine); the executor only needs the exit status.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.commands.worker``: the same command without building the whole CLI
    (the executor launches this, so a broken or slow-to-import command module elsewhere can
    never turn every evaluation into a crash)."""
    import argparse

    from harness.errors import HarnessError

    parser = argparse.ArgumentParser(prog="python -m harness worker", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
