"""`python -m harness worker --spec spec.json --out result.json`: one evaluation in this process.

Internal: the executor launches ``python -m harness.execution.worker`` (the same worker without
the CLI); see ``harness/execution/worker.py``.
"""
from __future__ import annotations


def add_arguments(parser) -> None:
    from harness.execution import worker

    worker.add_arguments(parser)


def run(args) -> int:
    from harness.execution import worker

    return worker.run(args.spec, args.out)
