"""`python -m harness <command>`: the command table and error handling.

Each command lives in ``harness/commands/<module>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``. Command modules import heavy libraries only inside ``run``. A ``HarnessError``
is one ``error:`` line and exit 2. ``check`` parses and runs on its own (``commands/check.py``
``main``): its exit status is git bisect run's protocol (0 good, 1 bad, 125 skip, 128 abort), which
argparse's usage exit 2 or Python's traceback exit 1 would break.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from harness import __version__
from harness.errors import HarnessError

# name -> (module under harness.commands, one-line help)
COMMANDS = {
    "bisect": ("bisect", "Phases 0-6: find which transform, compile backend or sharding setting costs accuracy."),
    "diagnose": ("diagnose", "Phase 1: one backend, one config, N samples; per-sample table and accuracy."),
    "prompts": ("prompts", "Print the exact prompts a task would send, one JSON object per line."),
    "compare": ("compare", "Paired statistics and verdict between two run directories."),
    "classify": ("classify", "Phase 2: label a run's failure pattern, with evidence and the next step."),
    "breakdown": ("breakdown", "Phase 5: per-subject / per-category paired breakdown of two runs."),
    "localize": ("localize", "Phase 4: where inside the culprit the candidate first leaves the reference (layer-wise)."),
    "fake-quant": ("fake_quant", "Phase 4a: write fake_quant_debug.yaml (quantized-kernel fusions off)."),
    "cache": ("cache", "List or remove cached evaluations (ls | rm)."),
    "regress": ("regress", "Nightly accuracy regression suite: JUnit, summary, history; non-zero on regression."),
    "history": ("history", "Trends from the regression history database, with a plot per model and task."),
    "check": ("check", "One evaluation against a reference, for `git bisect run` (0 good, 1 bad, 125 skip)."),
    "triage": ("triage", "Classify a failed run's log against the known crash patterns."),
    "worker": ("worker", "Run one evaluation spec in this process (used by the executor)."),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness",
        description="Find, with paired statistics, why AutoDeploy scores lower than the PyTorch backend.",
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_line) in COMMANDS.items():
        p = sub.add_parser(name, help=help_line, description=help_line)
        mod = importlib.import_module(f"harness.commands.{module}")
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["check"]:  # git bisect run's exit-code contract, usage errors included (commands/check.py)
        from harness.commands.check import main as check_main

        return check_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        from harness.execution.worker import register_extra_backends

        register_extra_backends()  # the HARNESS_EXTRA_BACKENDS / _TASKS testing hook, as in every worker
        return int(args._run(args) or 0)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head`: the reader has what it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
