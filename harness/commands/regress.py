"""`python -m harness regress --suite configs/nightly.yaml`: the nightly accuracy regression suite.

Exit status: 0 every job passed; 1 at least one regression (TensorRT-LLM threshold test failed or
the paired verdict is `regressed`); 3 no regression but at least one job unresolved (crash,
timeout, out of memory); 2 bad input (suite, references, configs).
"""
from __future__ import annotations

import argparse

DEFAULT_HISTORY = "reports/regress/history.db"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from harness.commands.options import add_quiet_argument
    from harness.execution.slots import parse_max_parallel
    from harness.execution.slurm import add_executor_arguments

    p.add_argument("--suite", required=True, help="suite YAML (models x tasks x configs x samples), "
                                                  "e.g. configs/nightly.yaml")
    p.add_argument("--out", "--output_path", dest="out", default=None, metavar="DIR",
                   help="output directory (default reports/regress/<suite>-<UTC time>)")
    p.add_argument("--history", default=DEFAULT_HISTORY, metavar="DB",
                   help=f"SQLite history database to append one row per job to (default {DEFAULT_HISTORY})")
    p.add_argument("--no-history", action="store_true", help="do not write the history database")
    p.add_argument("--bisect-on-fail", action="store_true",
                   help="run `bisect` for every failing AD job: its culprit is named on the console, in "
                        "summary.md/json and in the JUnit failure message, with a link to its report")
    p.add_argument("--bisect-timeout", type=float, default=None, metavar="S", help="time limit per bisect run")
    p.add_argument("--only", action="append", default=[], metavar="PATTERN",
                   help="run only jobs whose name matches (fnmatch or substring); repeatable")
    p.add_argument("--samples", type=int, default=None, metavar="N",
                   help="override every job's sample count (quick smoke runs)")
    p.add_argument("--dry-run", action="store_true", help="list jobs and their references, run nothing")
    p.add_argument("--cache-dir", default=".harness", help="evaluation cache (default .harness)")
    p.add_argument("--no-cache", action="store_true", help="re-run every evaluation (results are still stored)")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="seconds per evaluation before it counts as unresolved (default: the suite's "
                        "defaults.timeout, else 1800); passed on to --bisect-on-fail's bisects")
    p.add_argument("--eval-timeout", dest="timeout", type=float, help=argparse.SUPPRESS)
    p.add_argument("--max-parallel", type=parse_max_parallel, default=None, metavar="N|auto",
                   help="evaluations at once; auto: one per GPU, or per core on a CPU machine (default: suite "
                   "defaults.max_parallel or 1)")
    add_quiet_argument(p)
    add_executor_arguments(p)


def run(args) -> int:
    from harness.regress.suite import load_suite
    from harness.regress.suite_runner import check_references

    suite = load_suite(args.suite).select(args.only)
    if args.samples is not None:
        suite.override_samples(args.samples)
    check_references(suite)  # "Not registered specs" before anything runs
    if args.dry_run:
        for j in suite.jobs:
            print(dry_run_line(j))
        return 0
    outcome = _run_suite(args, suite)
    for r in outcome.results:
        print(result_line(r))
    print(totals_line(outcome))
    return outcome.exit_code


def _run_suite(args, suite):
    """run_suite with the Runner the command line asks for."""
    from datetime import datetime, timezone
    from pathlib import Path

    from harness.execution.runner import Runner
    from harness.execution.slurm import executor_options
    from harness.regress.suite_runner import run_suite

    out = Path(args.out) if args.out else Path("reports/regress") / (
        f"{suite.name}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}")
    timeout = args.timeout if args.timeout is not None else (suite.timeout or 1800)
    max_parallel = args.max_parallel if args.max_parallel is not None else (suite.max_parallel or 1)
    ex_name, ex_opts, ex_argv = executor_options(args)
    with Runner(cache_dir=args.cache_dir, use_cache=not args.no_cache, timeout=timeout, max_parallel=max_parallel,
                quiet=args.quiet, executor=ex_name, executor_options=ex_opts,
                workdir=Path(args.cache_dir) / "work") as runner:
        return run_suite(suite, out, runner, history_db=None if args.no_history else args.history,
                         bisect_on_fail=args.bisect_on_fail, executor_argv=ex_argv,
                         bisect_timeout=args.bisect_timeout, log=(lambda *a, **k: None) if args.quiet else print)


# -- printing ------------------------------------------------------------------------------------

def dry_run_line(j) -> str:
    """One job for --dry-run: backend, config and the reference entry it matched."""
    from harness.regress.suite_runner import job_reference

    ref = job_reference(j)
    src = f"ref {ref.accuracy:.2f} ({ref.source}, entry {ref.entry_index})" if ref else "no reference"
    paired = f", paired with {j.paired_backend}" if j.paired_backend else ""
    config = j.config_path or ("inline config" if j.config else "default config")
    return f"{j.name}: {j.backend} {config}; {src}{paired}"


def result_line(r) -> str:
    score = "-" if r.score is None else f"{r.score:.2f}"
    thr = "-" if r.threshold is None else f"{r.threshold:.2f}"
    paired = (r.paired or {}).get("verdict") or "-"
    line = f"{r.status.upper():<7} {r.name}  score {score}  threshold {thr}  paired {paired}"
    if r.messages and r.status != "passed":
        line += f"  ({'; '.join(r.messages)})"
    if r.bisect:
        line += f"\n        bisect: {r.bisect.get('culprit')}"
    if r.bisect_report:
        line += f"\n        bisect report: {r.bisect_report}"
    return line


def totals_line(outcome) -> str:
    c = outcome.counts()
    return (f"{c['passed']} passed, {c['failed']} failed, {c['error']} unresolved; "
            f"junit {outcome.files['junit']}; summary {outcome.files['summary_md']}"
            + (f"; history {outcome.files['history']}" if outcome.files.get("history") else ""))
