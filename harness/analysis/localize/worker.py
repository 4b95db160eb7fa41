"""``python -m harness.analysis.localize.worker --out RESULT.json``: one localization request in its own process.

The process imports the torch stack first and only then reads the request (JSON, ``job.py``) from
stdin, so a caller can start it early and let the imports overlap other work (bisect starts it when the
search begins). An empty stdin means the request is not needed: the process exits 0 without output. The
result (JSON-safe: non-finite numbers as strings) is written atomically to ``--out``; an exception
becomes ``{"ran": false, "error": ..., "log_tail": ...}``, so a crash, hang or kill of this process is
the caller's to report, never the caller's own crash.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

WARM = ("torch", "transformers", "transformers.models.llama.modeling_llama", "harness.backends.activations",
        "harness.backends.hf.backend", "harness.analysis.localize.job", "matplotlib")


def warm_up() -> None:
    import importlib

    for name in WARM:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a head start only; the request's own imports report errors
            pass
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401
    except Exception:  # noqa: BLE001
        pass


def handle(request: dict) -> dict:
    from harness.analysis.localize.job import run_request
    from harness.errors import HarnessError

    try:
        return run_request(request)
    except HarnessError as exc:
        return {"ran": False, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - reported in the result, not raised
        return {"ran": False, "error": f"{type(exc).__name__}: {exc}", "log_tail": traceback.format_exc()[-3000:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.analysis.localize.worker")
    parser.add_argument("--out", required=True, help="where to write the result JSON")
    args = parser.parse_args(argv)
    warm_up()
    text = sys.stdin.read()
    if not text.strip():
        return 0
    from harness.comparison.verdict import json_safe
    from harness.jsonio import write_json_atomic

    write_json_atomic(args.out, json_safe(handle(json.loads(text))))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip the interpreter's teardown of torch and matplotlib (about 2 s); the result is on disk
