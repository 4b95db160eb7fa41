"""Benchmark of parallel evaluation: search rounds with k slots, and the demo bisect at --max-parallel 1 vs 2.

    python scripts/bench_parallel.py [--out reports/bench_parallel.json] [--trials 30] [--ns 16,32,64]
                                     [--slots 1,2,4,8] [--repeats 2] [--skip-demo]

1. Synthetic oracle. For n = 16, 32, 64 knobs and three planted situations (one culprit, two
   independent culprits, an interacting pair that fails only when both are on), the search bisect runs
   (``harness.bisect.search.run_search``, adaptive) with k = 1, 2, 4, 8 slots (``parallel=k``: up to
   ``MAX_WIDTH`` probes judged per round) against an oracle that fails a knob set iff it holds a
   planted group. Reported per cell: rounds (batches of probes judged together: what sets the wall
   time when each probe is one evaluation) and evaluations (distinct probes), mean and max, and the
   ratio of evaluations to the sequential search's (k = 1) on the same plants. One culprit is planted
   at every position (exact averages); two culprits and the pair at --trials random positions.
   Targets: one culprit among 64 knobs in <= ceil(log_(k+1) 64) + 3 rounds; evaluations within +50%
   of the sequential search's.

2. Demo bisect. ``python -m harness bisect --config configs/demo/ad_demo_interaction.yaml`` (demo model
   and data, fresh worker process per evaluation) in a fresh evaluation store, at --max-parallel 1 and
   2, --repeats times each, alternating. Per run: the command's wall time, the run's wall time,
   evaluations, engine seconds (summed) and engine-busy seconds (the union of the engines' intervals:
   time at least one engine ran), the time outside any engine (run wall - engine-busy: orchestration,
   worker start-up, imports, model loading, IPC) as a fraction of the run's wall time, the culprits,
   and the load average before and after (the machine may be shared). Targets: the wall time at
   --max-parallel 2 at most 0.75x that at 1 with the same culprits; time outside the engine < 15% of
   the wall time.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.bisect.search import FAIL, MAX_WIDTH, PASS, run_search  # noqa: E402

SITUATIONS = ("one_culprit", "two_culprits", "interaction_pair")
DEMO_CONFIG = "configs/demo/ad_demo_interaction.yaml"


def plants(kind: str, knobs: list[str], trials: int, rng: random.Random) -> list[list[list[str]]]:
    if kind == "one_culprit":
        return [[[k]] for k in knobs]  # every position
    out = []
    for _ in range(trials):
        a, b = rng.sample(knobs, 2)
        out.append([[a], [b]] if kind == "two_culprits" else [[a, b]])
    return out


def search_once(knobs: list[str], planted: list[list[str]], k: int) -> dict:
    def oracle(on, purpose):
        return FAIL if any(set(g) <= set(on) for g in planted) else PASS

    def batch(sets, purposes):  # a round: its probes judged together
        return [oracle(s, p) for s, p in zip(sets, purposes)]

    res = run_search("adaptive", knobs, oracle, batch_oracle=batch, parallel=k)
    right = sorted(sorted(g) for g in res.culprits) == sorted(sorted(g) for g in planted)
    return {"rounds": res.rounds, "evaluations": res.evaluations, "right": right and res.explained is True,
            "width": res.width}


def summarise(rows: list[dict], key: str) -> dict:
    vals = [r[key] for r in rows]
    return {f"{key}_mean": round(statistics.mean(vals), 2), f"{key}_max": max(vals)}


def synthetic_bench(ns: list[int], slots: list[int], trials: int, seed: int = 0) -> list[dict]:
    cells = []
    for n in ns:
        knobs = [f"knob_{i:02d}" for i in range(n)]
        for kind in SITUATIONS:
            planted = plants(kind, knobs, trials, random.Random(f"{seed}-{n}-{kind}"))
            sequential = [search_once(knobs, p, 1) for p in planted]
            seq_evals = statistics.mean(r["evaluations"] for r in sequential)
            for k in slots:
                rows = sequential if k == 1 else [search_once(knobs, p, k) for p in planted]
                cell = {"n": n, "situation": kind, "slots": k, "width": rows[0]["width"], "plants": len(planted),
                        **summarise(rows, "rounds"), **summarise(rows, "evaluations"),
                        "evaluations_vs_sequential": round(statistics.mean(r["evaluations"] for r in rows) / seq_evals, 3),
                        "named_right": round(sum(r["right"] for r in rows) / len(rows), 3)}
                if kind == "one_culprit":
                    cell["rounds_target"] = math.ceil(math.log(n) / math.log(k + 1) - 1e-9) + 3
                    cell["meets_rounds_target"] = cell["rounds_max"] <= cell["rounds_target"]
                cells.append(cell)
    return cells


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def demo_run(workdir: Path, parallel: int) -> dict:
    cache, out = workdir / "cache", workdir / "reports"
    cmd = [sys.executable, "-m", "harness", "bisect", "--quiet", "--config", DEMO_CONFIG, "--max-parallel",
           str(parallel), "--cache-dir", str(cache), "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    load_before = loadavg()
    t0 = time.monotonic()
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        return {"max_parallel": parallel, "error": p.stderr[-2000:], "returncode": p.returncode}
    (path,) = list(out.glob("bisect-*/summary.json"))
    s = json.loads(path.read_text())
    r, st = s["run"], s["run"]["runner"]
    engine_busy = st.get("engine_busy_seconds", st["engine_seconds"])  # main had no union of intervals
    outside = max(0.0, r["wall_seconds"] - engine_busy)
    return {"max_parallel": parallel, "command_wall_seconds": round(wall, 2), "run_wall_seconds": r["wall_seconds"],
            "evaluations_run": st["evaluations_run"], "backend_seconds": st["backend_seconds"],
            "engine_seconds": st["engine_seconds"], "engine_busy_seconds": engine_busy,
            "busy_seconds": st.get("busy_seconds"), "worker_overhead_seconds": st["worker_overhead_seconds"],
            "outside_engine_seconds": round(outside, 2),
            "outside_engine_fraction": round(outside / r["wall_seconds"], 3) if r["wall_seconds"] else None,
            "verdict": s["verdict"], "culprits": [c["knobs"] for c in s["culprits"]],
            "confirmed": [c["confirmed"] for c in s["culprits"]], "trail_steps": len(s["trail"]),
            "loadavg_before": load_before, "loadavg_after": loadavg()}


def demo_bench(repeats: int) -> dict:
    runs = []
    for rep in range(repeats):
        for parallel in (1, 2):
            with tempfile.TemporaryDirectory(prefix="bench_parallel_") as tmp:
                row = demo_run(Path(tmp), parallel)
            row["repeat"] = rep
            print(json.dumps(row), file=sys.stderr)
            runs.append(row)
    by = {p: [r for r in runs if r.get("max_parallel") == p and "error" not in r] for p in (1, 2)}
    out: dict = {"command": f"python -m harness bisect --config {DEMO_CONFIG} --max-parallel N", "runs": runs}
    if by[1] and by[2]:
        w1 = [r["command_wall_seconds"] for r in by[1]]
        w2 = [r["command_wall_seconds"] for r in by[2]]
        same = all(r["culprits"] == by[1][0]["culprits"] for r in by[1] + by[2])
        ratio = statistics.median(w2) / statistics.median(w1)
        worst_outside = max(r["outside_engine_fraction"] for r in by[1] + by[2])
        out["summary"] = {
            "wall_seconds_p1": w1, "wall_seconds_p2": w2, "median_ratio_p2_over_p1": round(ratio, 3),
            "same_culprits": same, "meets_speedup_target": ratio <= 0.75 and same,
            "outside_engine_fraction_max": worst_outside, "meets_outside_engine_target": worst_outside < 0.15}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="reports/bench_parallel.json")
    ap.add_argument("--trials", type=int, default=30, help="random plants per cell for two culprits and the pair")
    ap.add_argument("--ns", default="16,32,64")
    ap.add_argument("--slots", default="1,2,4,8")
    ap.add_argument("--repeats", type=int, default=2, help="demo bisects per --max-parallel value")
    ap.add_argument("--skip-demo", action="store_true")
    args = ap.parse_args(argv)
    ns = [int(x) for x in args.ns.split(",")]
    slots = [int(x) for x in args.slots.split(",")]
    cells = synthetic_bench(ns, slots, args.trials)
    one64 = [c for c in cells if c["situation"] == "one_culprit" and c["n"] == max(ns)]
    result = {
        "machine": {"cpus": os.cpu_count(), "loadavg_at_start": loadavg(), "python": sys.version.split()[0]},
        "synthetic": {"max_width": MAX_WIDTH, "cells": cells, "summary": {
            "one_culprit_rounds_target_met": all(c["meets_rounds_target"] for c in one64),
            "evaluations_vs_sequential_max": max(c["evaluations_vs_sequential"] for c in cells),
            "evaluations_within_plus_50_percent": all(c["evaluations_vs_sequential"] <= 1.5 for c in cells)}},
    }
    if not args.skip_demo:
        result["demo"] = demo_bench(args.repeats)
    result["machine"]["loadavg_at_end"] = loadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"synthetic": result["synthetic"]["summary"], "demo": result.get("demo", {}).get("summary")},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
