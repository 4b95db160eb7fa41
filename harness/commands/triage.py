"""`python -m harness triage LOG... [--reports DIR]`: classify failed runs' logs by known patterns."""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("logs", nargs="*", metavar="LOG", help="log files of failed runs ('-' reads stdin)")
    p.add_argument("--reports", action="append", default=[], metavar="DIR",
                   help="also triage the log tail of every 'unresolved' evaluation found under DIR "
                        "(run directories, a regress --out directory, the cache .harness); repeatable")
    p.add_argument("--patterns", default=None, metavar="YAML",
                   help="pattern catalogue (default: configs/triage_patterns.yaml)")
    p.add_argument("--json", action="store_true", help="print one JSON object per log instead of text")


def run(args) -> int:
    from harness.errors import HarnessError
    from harness.analysis.triage import find_unresolved, load_patterns, triage_file, triage_text

    if not args.logs and not args.reports:
        raise HarnessError("nothing to triage; pass one or more LOG files, '-' for stdin, or --reports DIR")
    patterns = load_patterns(args.patterns)
    results = []
    for log in args.logs:
        if log == "-":
            results.append(triage_text(sys.stdin.read(), patterns, name="<stdin>"))
        else:
            results.append(triage_file(log, patterns))
    if args.reports:
        found = find_unresolved(args.reports)
        if not found and not args.json:
            print(f"no unresolved evaluations found under {', '.join(args.reports)}")
        for name, text in found:
            results.append(triage_text(text, patterns, name=name))
    for i, t in enumerate(results):
        if args.json:
            print(json.dumps(t.to_dict()))
        else:
            if i:
                print()
            print("\n".join(t.lines()))
    return 0
