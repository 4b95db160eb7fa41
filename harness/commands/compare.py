"""`python -m harness compare RUN_A RUN_B`: paired statistics and a verdict (RUN_A is the reference).

RUN_A / RUN_B are run directories (run.json + samples.jsonl, e.g. from `diagnose`). Samples pair
by id, prompt text hash and prompt token-id hash; different prompts are an error (exit 2) that
names how many differ. Prints the verdict (same | regressed | improved | inconclusive |
unresolved) with every number behind it - see harness/comparison/verdict.py for the statistics. `--aa RUN`
(repeatable) adds reruns of the reference config as an A/A noise floor. Exit 0 whatever the
verdict (use `check` for a pass/fail exit code), 2 on bad input.
"""
from __future__ import annotations

import json
import sys


def add_arguments(parser) -> None:
    from harness.comparison.verdict import DEFAULT_ALPHA, DEFAULT_KL_EXCEED_RATE, DEFAULT_KL_TOLERANCE, DEFAULT_MIN_EFFECT

    parser.add_argument("run_a", metavar="RUN_A", help="Run directory of the reference backend (e.g. PT / hf); "
                        "'reference' in the output means this run, 'gold answer' the data set's label.")
    parser.add_argument("run_b", metavar="RUN_B", help="Run directory of the candidate backend (e.g. AD / ad-emulator).")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                        help=f"Family-wise significance level (default {DEFAULT_ALPHA}; split over the accuracy and "
                             f"log-prob tests when both run).")
    parser.add_argument("--min-effect", type=float, default=DEFAULT_MIN_EFFECT,
                        help=f"Smallest accuracy difference in points that accuracy alone may call a regression "
                             f"(default {DEFAULT_MIN_EFFECT}).")
    parser.add_argument("--kl-tolerance", type=float, default=DEFAULT_KL_TOLERANCE,
                        help=f"Per-sample KL (nats, answer letters) that counts as acceptable noise (default "
                             f"{DEFAULT_KL_TOLERANCE}; raised by --aa noise).")
    parser.add_argument("--kl-exceed-rate", type=float, default=DEFAULT_KL_EXCEED_RATE,
                        help=f"Share of samples acceptable noise may push beyond the tolerance (default "
                             f"{DEFAULT_KL_EXCEED_RATE}).")
    parser.add_argument("--aa", action="append", default=[], metavar="RUN",
                        help="A rerun of the reference config (repeatable): its spread against RUN_A is the noise "
                             "floor; an effect within it is at most inconclusive.")
    parser.add_argument("--json", action="store_true", help="Print the comparison as JSON instead of text.")
    parser.add_argument("--flips", type=int, default=5, help="Flipped samples to show in the text output (default 5).")


def load_run(path: str) -> tuple[dict, list[dict], str]:
    """(run.json, records, label) of a run directory (HarnessError when it is not one)."""
    from harness.evaluation.rundir import read_run

    run, records = read_run(path)
    label = run.get("label") or run.get("backend") or path
    return run, records, str(label)


def run(args) -> int:
    from harness.comparison.verdict import VerdictOptions, compare_runs

    options = VerdictOptions(alpha=args.alpha, min_effect=args.min_effect, kl_tolerance=args.kl_tolerance,
                             kl_exceed_rate=args.kl_exceed_rate)
    run_a, rec_a, lab_a = load_run(args.run_a)
    run_b, rec_b, lab_b = load_run(args.run_b)
    noise = []
    for p in args.aa:
        run_n, rec_n, _ = load_run(p)
        noise.append(compare_runs({"status": run_a.get("status") or "ok", "records": rec_a},
                                  {"status": run_n.get("status") or "ok", "records": rec_n}, options=options))
    cmp_ = compare_runs({"status": run_a.get("status") or "ok", "records": rec_a, "error": run_a.get("error")},
                        {"status": run_b.get("status") or "ok", "records": rec_b, "error": run_b.get("error")},
                        noise=noise or None, options=options, labels=(lab_a, lab_b))
    if args.json:
        d = cmp_.to_dict()
        d["runs"] = {"reference": args.run_a, "candidate": args.run_b, "aa": list(args.aa)}
        json.dump(d, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
        return 0
    for line in cmp_.summary_lines():
        print(line)
    if cmp_.flips and args.flips > 0:
        print(f"flipped / discordant samples (largest KL first, {min(args.flips, len(cmp_.flips))} of "
              f"{cmp_.flips_total} shown):")
        for f in cmp_.flips[: args.flips]:
            kl = "-" if f["kl"] is None else f"{f['kl']:.3g}"
            mg = "-" if f["ref_margin"] is None else f"{f['ref_margin']:.3g}"  # the reference run's top1-top2
            print(f"  {f['id']}: gold answer {f['reference']!r}; {lab_a} {f['ref_output']!r} "
                  f"({'right' if f['ref_correct'] else 'wrong'}) -> {lab_b} {f['cand_output']!r} "
                  f"({'right' if f['cand_correct'] else 'wrong'}); KL {kl}, {lab_a}'s margin {mg}"
                  f"{' (near tie)' if f['near_tie'] else ''}")
    return 0
