"""Command-line options several commands share, spelled once: ``--quiet`` (one meaning everywhere) and
the TensorRT-LLM spellings accepted as aliases (``trtllm-eval``'s ``--extra_llm_api_options``,
``--output_path``; the evaluators' ``--dataset_path``, ``--num_samples``, ``--random_seed``, ... are
with the task options in ``harness/commands/prompts.py``)."""
from __future__ import annotations

import argparse

QUIET_HELP = ("print only the result (no progress bar or progress lines); without it a terminal gets a live bar "
              "with an ETA, and a log file or pipe gets one plain line per event")


def add_quiet_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)


def add_config_argument(p: argparse.ArgumentParser, help_text: str, default=None) -> None:
    """--config, also spelled --extra_llm_api_options (TensorRT-LLM's name for the same YAML overlay)."""
    p.add_argument("--config", "--extra_llm_api_options", dest="config", default=default, metavar="YAML",
                   help=help_text)


def add_timeout_argument(p: argparse.ArgumentParser, default: float | None = 1800, dest: str = "timeout") -> None:
    """--timeout: the one name of the per-evaluation time limit (``--eval-timeout`` still accepted)."""
    shown = "none" if default is None else f"{default:g}"
    p.add_argument("--timeout", dest=dest, type=float, default=default, metavar="S",
                   help=f"seconds per evaluation before it counts as unresolved (default {shown})")
    p.add_argument("--eval-timeout", dest=dest, type=float, help=argparse.SUPPRESS)  # the former bisect spelling
