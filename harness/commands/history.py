"""`python -m harness history [--db DB] [--model M] [--task T]`: trends and a PNG per model and task."""
from __future__ import annotations

import argparse

DEFAULT_DB = "reports/regress/history.db"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=DEFAULT_DB, help=f"history database written by `regress --history` "
                                                     f"(default {DEFAULT_DB})")
    p.add_argument("--model", default=None, help="only this model id")
    p.add_argument("--task", default=None, help="only this task")
    p.add_argument("--plots", default=None, metavar="DIR",
                   help="where to write trend_<model>_<task>.png (default: next to the database)")
    p.add_argument("--last", type=int, default=0, metavar="N", help="also list the last N rows per job")
    p.add_argument("--json", action="store_true", help="print the trend table as JSON records")


def _fmt(v, digits=2):
    import math

    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:+.{digits}f}" if digits < 0 else f"{v:.{digits}f}"
    return str(v)


def run(args) -> int:
    import json
    from pathlib import Path

    from harness.errors import HarnessError
    from harness.regress.history import load, plot_trends, trends

    df = load(args.db, model=args.model, task=args.task)
    if df.empty:
        what = " and ".join(x for x in (f"model {args.model!r}" if args.model else "",
                                        f"task {args.task!r}" if args.task else "") if x)
        raise HarnessError(f"no results in {args.db}{' for ' + what if what else ''}; run "
                           "`python -m harness regress --suite ... --history DB` first or drop the filter")
    t = trends(df)
    if args.json:
        print(t.to_json(orient="records"))
    else:
        print(f"{len(df['run_id'].unique())} run(s), {len(df)} job result(s) in {args.db}")
        header = f"{'model':<24} {'task':<6} {'config':<26} {'runs':>4} {'latest':>7} {'prev':>7} {'delta':>7} " \
                 f"{'mean':>7} {'min':>7} {'max':>7} {'ref':>7} {'thresh':>7} last"
        print(header)
        for _, r in t.iterrows():
            delta = "-" if r["delta"] is None or r["delta"] != r["delta"] else f"{r['delta']:+.2f}"
            print(f"{str(r['model'])[:24]:<24} {r['task']:<6} {str(r['config'])[:26]:<26} {r['runs']:>4} "
                  f"{_fmt(r['latest']):>7} {_fmt(r['previous']):>7} {delta:>7} {_fmt(r['mean']):>7} "
                  f"{_fmt(r['min']):>7} {_fmt(r['max']):>7} {_fmt(r['reference']):>7} {_fmt(r['threshold']):>7} "
                  f"{r['last_status']}")
        if args.last:
            print()
            for job, g in df.groupby("job", sort=True):
                print(f"{job}:")
                for _, row in g.tail(args.last).iterrows():
                    print(f"  {row['started_at']}  {row['status']:<7} score {_fmt(row['score'])}  "
                          f"threshold {_fmt(row['threshold'])}  paired {row['paired_verdict'] or '-'}  "
                          f"{json.dumps(row['versions'], sort_keys=True)}")
    plots_dir = Path(args.plots) if args.plots else Path(args.db).resolve().parent
    import sys

    for path in plot_trends(df, plots_dir):
        print(f"plot: {path}", file=sys.stderr if args.json else sys.stdout)
    return 0
