"""Benchmark of bisect: evaluations each search strategy needs, and the demo bisect's wall time.

    python scripts/bench_bisect.py [--out reports/bench_bisect.json] [--trials 20] [--ns 8,16,32,64]
                                   [--skip-demo]

1. Search cost. For n = 8, 16, 32, 64 knobs and three planted situations - one culprit, two
   independent culprits, an interacting pair (fails only when both are on) - each strategy
   (adaptive, linear) runs the *same search code* bisect uses (harness.bisect.search.run_search)
   against a synthetic oracle (a knob set fails iff it contains a planted group), then the Phase-6
   confirmation bisect performs (full minus the culprits; minimal plus the culprits; for several
   groups each group alone; for a pair each member alone). "evaluations" counts distinct
   configurations judged by search + confirmation (what the evaluation store would run; the
   reference, full and minimal runs are common to both strategies and not counted). Culprit
   positions are drawn at random (--trials per cell, fixed seed). "named_right" is the share of
   trials whose culprit groups equal the planted ones and were confirmed both ways.
   Target (the acceptance criterion of the search; the result's "summary" records whether it was
   met): one culprit, adaptive <= ceil(log2 n) + 3 evaluations including confirmation, linear about n + 2.

2. Demo bisect. `python -m harness bisect` with no arguments (demo model, data and config, fresh
   worker process per evaluation) in a fresh evaluation store: wall time of the whole command, the
   run's own wall time and backend seconds from summary.json, and the harness overhead (time outside
   backend evaluation) as a fraction of the run's wall time (target < 5%); then the same command
   again, which must run zero evaluations. Target: the first run under two minutes on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.bisect.search import FAIL, PASS, run_search  # noqa: E402


def oracle_for(groups):
    def oracle(on, purpose):
        s = set(on)
        return FAIL if any(set(g) <= s for g in groups) else PASS
    return oracle


def confirmation_sets(knobs, groups):
    """The configurations Phase 6 judges (as knob sets switched on), as the orchestrator builds them."""
    allc = [k for g in groups for k in g]
    sets = []
    if len(groups) > 1:
        sets += [set(g) for g in groups]
    for g in groups:
        if len(g) > 1:
            sets += [{k} for k in g]
    sets += [set(knobs) - set(allc), set(allc)]
    return sets


def one_trial(strategy, knobs, planted):
    oracle = oracle_for(planted)
    res = run_search(strategy, knobs, oracle)
    judged = {frozenset(p.on) for p in res.probes}
    groups = res.culprits
    extra = 0
    outcomes = {}
    for s in confirmation_sets(knobs, groups):
        key = frozenset(s)
        if key not in judged and key not in (frozenset(), frozenset(knobs)):
            judged.add(key)
            extra += 1
        outcomes[key] = oracle(tuple(s), "confirm")
    allc = {k for g in groups for k in g}
    confirmed = (bool(groups) and outcomes[frozenset(set(knobs) - allc)] == PASS
                 and outcomes[frozenset(allc)] == FAIL
                 and all(outcomes[frozenset({k})] == PASS for g in groups if len(g) > 1 for k in g))
    right = sorted(sorted(g) for g in groups) == sorted(sorted(g) for g in planted)
    return {"evaluations": res.evaluations + extra, "search": res.evaluations, "confirm": extra,
            "named_right": bool(right and confirmed)}


def plant(kind, knobs, rng):
    if kind == "one_culprit":
        return [[rng.choice(knobs)]]
    a, b = rng.sample(knobs, 2)
    return [[a], [b]] if kind == "two_culprits" else [[a, b]]


def search_bench(ns, trials, seed=0):
    rows = []
    for n in ns:
        knobs = [f"knob_{i:02d}" for i in range(n)]
        for kind in ("one_culprit", "two_culprits", "interaction_pair"):
            rng = random.Random(f"{seed}-{n}-{kind}")
            planted_list = [plant(kind, knobs, rng) for _ in range(trials)]
            for strategy in ("adaptive", "linear"):
                res = [one_trial(strategy, knobs, p) for p in planted_list]
                ev = [r["evaluations"] for r in res]
                row = {"n": n, "situation": kind, "strategy": strategy, "trials": trials,
                       "evaluations_mean": round(sum(ev) / len(ev), 2), "evaluations_max": max(ev),
                       "evaluations_min": min(ev),
                       "search_mean": round(sum(r["search"] for r in res) / len(res), 2),
                       "confirm_mean": round(sum(r["confirm"] for r in res) / len(res), 2),
                       "named_right": round(sum(r["named_right"] for r in res) / len(res), 3)}
                if kind == "one_culprit":
                    target = math.ceil(math.log2(n)) + 3 if strategy == "adaptive" else n + 2
                    row["target"] = target
                    row["meets_target"] = (max(ev) <= target) if strategy == "adaptive" else (max(ev) <= target)
                rows.append(row)
    return rows


def demo_bench(workdir: Path) -> dict:
    cache, out = workdir / "cache", workdir / "reports"
    cmd = [sys.executable, "-m", "harness", "bisect", "--quiet", "--cache-dir", str(cache), "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    runs = []
    for attempt in ("fresh", "rerun"):
        t0 = time.monotonic()
        p = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=1200)
        wall = time.monotonic() - t0
        if p.returncode != 0:
            return {"error": p.stderr[-2000:], "returncode": p.returncode}
        (path,) = list(out.glob("bisect-*/summary.json"))
        s = json.loads(path.read_text())
        r = s["run"]
        runs.append({"attempt": attempt, "command_wall_seconds": round(wall, 2),
                     "run_wall_seconds": r["wall_seconds"], "backend_seconds": r["runner"]["backend_seconds"],
                     "evaluations_run": r["runner"]["evaluations_run"], "cache_hits": r["runner"]["hits"],
                     "harness_overhead_seconds": r["harness_overhead_seconds"],
                     "harness_overhead_fraction": r["harness_overhead_fraction"],
                     "verdict": s["verdict"], "culprits": [c["knobs"] for c in s["culprits"]],
                     "confirmed": [c["confirmed"] for c in s["culprits"]], "trail_steps": len(s["trail"]),
                     "stable": {k: v for k, v in s.items() if k != "run"}})
    fresh, rerun = runs
    same = fresh.pop("stable") == rerun.pop("stable")
    return {"fresh": fresh, "rerun": rerun, "rerun_summary_identical": same,
            "targets": {"fresh_under_120s": fresh["command_wall_seconds"] < 120,
                        "overhead_under_5pct": (fresh["harness_overhead_fraction"] or 1) < 0.05,
                        "rerun_runs_no_evaluation": rerun["evaluations_run"] == 0},
            "cpu_count": os.cpu_count()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO / "reports" / "bench_bisect.json"))
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--ns", default="8,16,32,64")
    ap.add_argument("--skip-demo", action="store_true")
    args = ap.parse_args(argv)
    ns = [int(x) for x in args.ns.split(",")]
    t0 = time.monotonic()
    rows = search_bench(ns, args.trials)
    result = {"search": rows, "search_seconds": round(time.monotonic() - t0, 2)}
    one = [r for r in rows if r["situation"] == "one_culprit"]
    result["summary"] = {
        "adaptive_one_culprit_max_by_n": {r["n"]: r["evaluations_max"] for r in one if r["strategy"] == "adaptive"},
        "adaptive_target_by_n": {r["n"]: r["target"] for r in one if r["strategy"] == "adaptive"},
        "linear_one_culprit_max_by_n": {r["n"]: r["evaluations_max"] for r in one if r["strategy"] == "linear"},
        "adaptive_meets_target": all(r["meets_target"] for r in one if r["strategy"] == "adaptive"),
        "all_named_right": all(r["named_right"] == 1.0 for r in rows),
    }
    if not args.skip_demo:
        with tempfile.TemporaryDirectory(prefix="bench-bisect-") as d:
            result["demo"] = demo_bench(Path(d))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
    if "demo" in result:
        print(json.dumps({k: v for k, v in result["demo"].items()}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
