"""`python -m harness breakdown RUN_A RUN_B --out DIR`: Phase 5 per-subject / per-category breakdown.

RUN_A is the reference. Writes per_subject.csv, per_category.csv, by_prompt_length.csv,
breakdown.md, breakdown.png and flags.json into DIR and prints the flags (uniform drop, subjects
near chance, easy-right/hard-wrong, prompt-length correlation) with their numbers.
"""
from __future__ import annotations

import json
import sys


def add_arguments(parser) -> None:
    parser.add_argument("run_a", metavar="RUN_A", help="Reference run directory.")
    parser.add_argument("run_b", metavar="RUN_B", help="Candidate run directory.")
    parser.add_argument("--out", required=True, metavar="DIR", help="Directory for the tables and the plot.")
    parser.add_argument("--alpha", type=float, default=0.05, help="Significance level (default 0.05).")
    parser.add_argument("--json", action="store_true", help="Print paths and flags as JSON.")


def run(args) -> int:
    from harness.analysis.breakdown import write_breakdown
    from harness.commands.compare import load_run
    from harness.errors import HarnessError
    from harness.comparison.verdict import json_safe

    run_a, rec_a, lab_a = load_run(args.run_a)
    run_b, rec_b, lab_b = load_run(args.run_b)
    for path, r, recs in ((args.run_a, run_a, rec_a), (args.run_b, run_b, rec_b)):
        if (r.get("status") or "ok") != "ok" or not recs:
            raise HarnessError(f"run {path!r} is {r.get('status') or 'empty'}; a breakdown needs two finished runs")
    task_meta = {"multiple_choice": True} if run_a.get("task") == "mmlu" else None
    res = write_breakdown(rec_a, rec_b, args.out, task_meta=task_meta, alpha=args.alpha, labels=(lab_a, lab_b))
    if args.json:
        json.dump(json_safe(res), sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
        return 0
    s = res["summary"]
    print(f"{s['n']} paired samples, {s['subjects']} subjects: {lab_a} {s['ref_acc']:.1f}% -> {lab_b} "
          f"{s['cand_acc']:.1f}% ({s['delta']:+.1f} points, McNemar p {s['p_two_sided']:.3g})")
    for name, fl in res["flags"].items():
        print(f"  {name}: {'FLAGGED' if fl['flag'] else 'no'}"
              + (f" - {fl['implication']}" if fl["flag"] else ""))
        if name == "near_chance" and (fl["subjects"] or fl["near_chance_in_both"]):
            print(f"    newly near chance: {', '.join(fl['subjects']) or '-'}; near chance in both runs: "
                  f"{', '.join(fl['near_chance_in_both']) or '-'}")
    for k in ("markdown", "per_subject_csv", "per_category_csv", "plot"):
        print(f"wrote {res[k]}")
    return 0
