"""`python -m harness classify RUN [--reference RUN]`: Phase 2 - label a run's failure pattern.

Prints the primary label of the method's error-pattern table (configs/phase2_patterns.yaml), the
evidence counts, example samples, the likely root cause and the next step; other labels that also
match are listed after it. `--reference` (the PT / hf run on the same samples) enables the
reference-based patterns (coherent-but-wrong vs reference, easy-right/hard-wrong, excess over the
reference's own rate); `--world-size WS=RUN` (repeatable, include 1) checks world-size dependence.
"""
from __future__ import annotations

import json
import sys

from harness.errors import HarnessError


def add_arguments(parser) -> None:
    parser.add_argument("run", metavar="RUN", help="Run directory to classify.")
    parser.add_argument("--reference", metavar="RUN", default=None,
                        help="Reference run directory on the same samples (e.g. the PT / hf run).")
    parser.add_argument("--world-size", action="append", default=[], metavar="WS=RUN",
                        help="Run of the same config at world size WS (repeatable; include 1=RUN).")
    parser.add_argument("--alpha", type=float, default=0.05, help="Significance level (default 0.05).")
    parser.add_argument("--patterns", default=None, help="Pattern table YAML (default configs/phase2_patterns.yaml).")
    parser.add_argument("--json", action="store_true", help="Print the classification as JSON.")


def run(args) -> int:
    from harness.analysis.classify import classify
    from harness.commands.compare import load_run

    run_, records, _ = load_run(args.run)
    if (run_.get("status") or "ok") != "ok":
        raise HarnessError(f"run {args.run!r} is {run_.get('status')}: {run_.get('error') or 'no records'}; "
                           f"nothing to classify (see `python -m harness triage` on its log)")
    reference = None
    if args.reference:
        run_r, rec_r, _ = load_run(args.reference)
        reference = {"status": run_r.get("status") or "ok", "records": rec_r}
    ws_runs = {}
    for item in args.world_size:
        ws, sep, path = item.partition("=")
        if not sep or not ws.strip().isdigit():
            raise HarnessError(f"--world-size {item!r} is not WS=RUN; pass e.g. --world-size 1=reports/ws1 "
                               f"--world-size 2=reports/ws2")
        run_w, rec_w, _ = load_run(path)
        ws_runs[int(ws)] = {"status": run_w.get("status") or "ok", "records": rec_w}
    c = classify(records, reference_records=reference, world_size_runs=ws_runs or None, task=run_.get("task"),
                 alpha=args.alpha, patterns=args.patterns)
    if args.json:
        json.dump(c.to_dict(), sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    else:
        print("\n".join(c.summary_lines()))
    return 0
