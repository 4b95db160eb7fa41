"""Detection benchmark: how often each test catches a planted fault, and how often it cries wolf.

    python scripts/bench_detection.py [--out reports/bench_detection.json] [--draws 20] [--ns 25,50,100,200]

Design (cheap and honest):

1. Evaluate every configuration ONCE on the whole demo MMLU test set (1200 rows, 6 subjects) in
   this process (``harness.evaluation.run.run_evaluation``): the reference (``hf``), clean candidate
   configs and faulty candidate configs of graded severity (the emulator's ``hardcoded_eps`` and
   ``wrong_softmax_scale`` faults at several strengths, see configs/emulator/FAULTS.md). Records
   are cached under ``--cache`` keyed by the configuration, so reruns only redo the statistics.
2. For each n in 25, 50, 100, 200 and each of 20 seeded draws, subsample n sample ids uniformly
   without replacement and pair reference and candidate records by id - exactly what a run of n
   samples of both backends would have produced, since greedy decoding of one prompt does not
   depend on the others.
   Faults: ``bench_attn_out_scale`` (a plugin transform defined below: every attention output
   projection scaled by a factor, as a dequantization scale off by a factor would do; graded 0.8
   .. 0.35, the 0.45 step costs about 3 points on the full set) and the emulator's own
   ``hardcoded_eps`` (fuse_rmsnorm with a hard-coded epsilon) and ``wrong_softmax_scale``.
   The demo model is near chance on three of its six subjects, so even a fault's full-set
   accuracy delta carries noise from near-tie items flipping both ways (word_match gains 4 points
   under every fault); the per-subject damage is on the subjects the model knows.
3. Per draw, record whether each method flags a regression at alpha = 0.05:
   * ``trtllm_gate`` - TensorRT-LLM's unpaired gate (accuracy_core.compute_threshold): the
     candidate's accuracy on the n samples below threshold(n, reference accuracy), where the
     reference accuracy is the stored full-set number, as the engine's CI uses it;
   * ``mcnemar`` - exact McNemar, two-sided p < alpha with more losses than gains;
   * ``logprob`` - the log-probability test alone at alpha: KL exceedance test significant and
     the direction "regressed" (harness.comparison.verdict, default tolerance 0.01 nats, 5% allowed rate);
   * ``logprob_divergent`` - the exceedance test alone (a difference, any direction);
   * ``verdict`` - what the harness prints: compare_runs(...).verdict == "regressed" (both tests
     at alpha/2 each, direction required).
   Detection rate = share of draws flagged. On clean configs the same share is the false-alarm rate.

Clean configs: the emulator with its default pipeline (no fault; numerically identical to hf on
CPU), hf at batch size 1 instead of 32 (different padding / batch composition), and the emulator
with a plugin transform that rounds every linear layer's weights and outputs to bfloat16 - the kind
of kernel-level rounding difference two real engines always have and a harness must accept. The
plugin lives in this file (``TRANSFORMS`` below), so the file doubles as an emulator plugin.

Target (the acceptance criterion of the paired verdict; the result's "target" entry records it and
whether it was met): a fault costing about 3 accuracy points detected at n = 100 in >= 80% of draws by
the best paired method, with false alarms <= alpha on every clean config.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------------------------------------
# emulator plugin: bf16 rounding noise (a *clean* difference)


def _bf16_noise(model, options, context):
    """Round every nn.Linear's weight and output to bfloat16 (and back to float32)."""
    import torch

    n = 0
    for mod in model.modules():
        if isinstance(mod, torch.nn.Linear):
            with torch.no_grad():
                mod.weight.copy_(mod.weight.to(torch.bfloat16).to(mod.weight.dtype))
            mod.register_forward_hook(lambda m, i, o: o.to(torch.bfloat16).to(o.dtype))
            n += 1
    return n


def _attn_out_scale(model, options, context):
    """A graded systematic fault: every attention output projection scaled by ``scale`` (default 0.5),
    as when a fused attention kernel applies a dequantization scale that is off by a factor."""
    import torch

    scale = float(options.get("scale", 0.5))
    n = 0
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and name.endswith("o_proj"):
            with torch.no_grad():
                mod.weight.mul_(scale)
            n += 1
    return n


TRANSFORMS = {"bench_bf16_noise": _bf16_noise, "bench_attn_out_scale": _attn_out_scale}
DEFAULTS = {name: {"stage": "post_load_fusion", "enabled": False} for name in TRANSFORMS}
CATEGORIES = {name: "fusion" for name in TRANSFORMS}

PLUGIN = str(Path(__file__).resolve())


def _fault(host: str, fault: str, strength=None) -> dict:
    conf = {"fault": fault}
    if strength is not None:
        conf["fault_strength"] = strength
    return {"transforms": {host: conf}}


def _attn(scale: float) -> dict:
    return {"kind": "fault", "backend": "ad-emulator", "sampling": {}, "plugins": [PLUGIN],
            "config": {"transforms": {"bench_attn_out_scale": {"enabled": True, "scale": scale}}}}


REFERENCE = {"backend": "hf", "config": {}, "sampling": {}}
CONFIGS = {
    # clean: differences a harness must accept
    "clean/emulator_default": {"kind": "clean", "backend": "ad-emulator", "config": {}, "sampling": {}},
    "clean/hf_batch1": {"kind": "clean", "backend": "hf", "config": {}, "sampling": {"batch_size": 1}},
    "clean/emulator_bf16_rounding": {"kind": "clean", "backend": "ad-emulator", "sampling": {},
                                     "config": {"transforms": {"bench_bf16_noise": {"enabled": True}}},
                                     "plugins": [PLUGIN]},
    # faults of graded severity: a systematic scale error in the attention output (plugin above) ...
    "fault/attn_out_scale_0.8": _attn(0.8),
    "fault/attn_out_scale_0.65": _attn(0.65),
    "fault/attn_out_scale_0.5": _attn(0.5),
    "fault/attn_out_scale_0.45": _attn(0.45),
    "fault/attn_out_scale_0.4": _attn(0.4),
    "fault/attn_out_scale_0.35": _attn(0.35),
    # ... and the emulator's own faults (configs/emulator/FAULTS.md)
    "fault/hardcoded_eps_0.01": {"kind": "fault", "backend": "ad-emulator", "sampling": {},
                                 "config": _fault("fuse_rmsnorm", "hardcoded_eps", 0.01)},
    "fault/hardcoded_eps_0.02": {"kind": "fault", "backend": "ad-emulator", "sampling": {},
                                 "config": _fault("fuse_rmsnorm", "hardcoded_eps", 0.02)},
    "fault/hardcoded_eps_0.04": {"kind": "fault", "backend": "ad-emulator", "sampling": {},
                                 "config": _fault("fuse_rmsnorm", "hardcoded_eps", 0.04)},
    "fault/hardcoded_eps_0.05": {"kind": "fault", "backend": "ad-emulator", "sampling": {},
                                 "config": _fault("fuse_rmsnorm", "hardcoded_eps", 0.05)},
    "fault/wrong_softmax_scale_0.75": {"kind": "fault", "backend": "ad-emulator", "sampling": {},
                                       "config": _fault("match_attention_layout", "wrong_softmax_scale", 0.75)},
    "fault/wrong_softmax_scale_0.9": {"kind": "fault", "backend": "ad-emulator", "sampling": {},
                                      "config": _fault("match_attention_layout", "wrong_softmax_scale", 0.9)},
    "fault/wrong_softmax_scale_1.0": {"kind": "fault", "backend": "ad-emulator", "sampling": {},
                                      "config": _fault("match_attention_layout", "wrong_softmax_scale", 1.0)},
}

METHODS = ("trtllm_gate", "mcnemar", "logprob", "logprob_divergent", "verdict")


def _key(entry: dict) -> str:
    blob = json.dumps({k: entry.get(k) for k in ("backend", "config", "sampling")}, sort_keys=True)
    blob += "|" + ",".join(Path(p).name for p in entry.get("plugins") or [])
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def evaluate_all(names: list[str], cache: Path | None, model: str, dataset: str, log, fresh: bool = False) -> dict:
    """{name: records} for the reference and each config, evaluated once on the whole set (cached)."""
    from harness.evaluation.run import run_evaluation
    from harness.evaluation.spec import EvalSpec
    from harness.evaluation.records import read_records, write_records

    out = {}
    for name in ["reference"] + names:
        entry = REFERENCE if name == "reference" else CONFIGS[name]
        path = cache / f"{name.replace('/', '__')}-{_key(entry)}.jsonl" if cache else None
        if path is not None and path.is_file() and not fresh:
            out[name] = read_records(path)
            log(f"  {name}: {len(out[name])} records (cached)")
            continue
        t0 = time.time()
        spec = EvalSpec(backend=entry["backend"], model=model, task="mmlu", config=entry.get("config") or {},
                        dataset=dataset, samples=None, seed=0, sampling=entry.get("sampling") or {},
                        plugins=list(entry.get("plugins") or []), label=name)
        res = run_evaluation(spec)
        if res.status != "ok":
            raise RuntimeError(f"{name}: evaluation unresolved: {res.error}")
        out[name] = res.records
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_records(path, res.records)
        log(f"  {name}: {len(res.records)} records in {time.time() - t0:.0f} s")
    return out


def full_set_summary(ref, cand) -> dict:
    from harness.comparison.verdict import compare_runs

    c = compare_runs(ref, cand)
    return {"accuracy": c.accuracy["cand_points"], "delta_points": c.accuracy["diff_points"],
            "losses_b": c.mcnemar["b"], "gains_c": c.mcnemar["c"], "kl_mean": c.logprob.get("kl_mean"),
            "kl_median": c.logprob.get("kl_median"), "top1_agreement": c.logprob.get("top1_agreement"),
            "exceed_rate": c.logprob_test.get("rate"), "delta_gold_mean": c.logprob.get("delta_gold_mean"),
            "verdict": c.verdict}


def detections(ref_sub, cand_sub, ref_full_acc: float, alpha: float) -> dict:
    from harness.comparison import stats
    from harness.comparison.verdict import VerdictOptions, compare_runs

    c = compare_runs(ref_sub, cand_sub, options=VerdictOptions(alpha=alpha, n_boot=200))
    n = c.n
    m = c.mcnemar
    t = c.logprob_test
    lp_div = bool(t.get("available")) and t["p"] < alpha
    sf = t.get("direction_test") or {}
    lp_dir = None
    if lp_div:  # same direction rule as harness.comparison.verdict, with the divergence test at the full alpha
        if sf.get("p_less", 1.0) < alpha and sf.get("mean", 0) < 0:
            lp_dir = "regressed"
        elif sf.get("p_greater", 1.0) < alpha and sf.get("mean", 0) > 0:
            lp_dir = "improved"
        elif m["p_regressed"] < alpha and m["b"] > m["c"]:
            lp_dir = "regressed"
    return {
        "trtllm_gate": c.accuracy["cand_points"] < stats.trtllm_threshold(n, ref_full_acc, 50.0, alpha),
        "mcnemar": m["p_two_sided"] < alpha and m["b"] > m["c"],
        "logprob": lp_dir == "regressed",
        "logprob_divergent": lp_div,
        "verdict": c.verdict == "regressed",
    }


def run_bench(records: dict, ns: list[int], draws: int, alpha: float, log) -> dict:
    import numpy as np

    ref = records["reference"]
    ids = [r["id"] for r in ref]
    ref_full_acc = 100.0 * sum(bool(r["correct"]) for r in ref) / len(ref)
    by_id = {name: {r["id"]: r for r in recs} for name, recs in records.items()}
    results = {}
    for name in records:
        if name == "reference":
            continue
        results[name] = {}
        for n in ns:
            counts = {k: 0 for k in METHODS}
            for seed in range(draws):
                rng = np.random.default_rng(1000 * n + seed)
                pick = sorted(rng.choice(len(ids), size=n, replace=False).tolist())
                sub_ids = [ids[i] for i in pick]
                d = detections([by_id["reference"][i] for i in sub_ids], [by_id[name][i] for i in sub_ids],
                               ref_full_acc, alpha)
                for k, v in d.items():
                    counts[k] += bool(v)
            results[name][str(n)] = {k: counts[k] / draws for k in METHODS}
        log(f"  {name}: " + "; ".join(f"n={n} " + ",".join(f"{k}={results[name][str(n)][k]:.2f}" for k in METHODS)
                                       for n in ns))
    return results


def main(argv=None) -> int:
    from harness.paths import DEMO_MMLU, DEMO_MODEL
    from harness.comparison.stats import trtllm_theta
    from harness.comparison.verdict import DEFAULT_KL_EXCEED_RATE, DEFAULT_KL_TOLERANCE

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "reports" / "bench_detection.json"))
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--ns", default="25,50,100,200")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--cache", default=str(ROOT / "reports" / "bench_detection_cache"),
                    help="Directory caching each configuration's records ('' disables).")
    ap.add_argument("--fresh", action="store_true", help="Re-evaluate every configuration (refresh the cache).")
    ap.add_argument("--configs", default="", help="Comma-separated subset of configuration names.")
    ap.add_argument("--model", default=str(DEMO_MODEL))
    ap.add_argument("--dataset", default=str(DEMO_MMLU))
    args = ap.parse_args(argv)
    ns = [int(x) for x in args.ns.split(",") if x.strip()]
    names = [x for x in args.configs.split(",") if x] or list(CONFIGS)
    unknown = [x for x in names if x not in CONFIGS]
    if unknown:
        print(f"error: unknown configs {unknown}; valid: {', '.join(CONFIGS)}", file=sys.stderr)
        return 2

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    t0 = time.time()
    log("evaluating each configuration once on the whole demo set ...")
    records = evaluate_all(names, Path(args.cache) if args.cache else None, args.model, args.dataset, log, args.fresh)
    t_eval = time.time() - t0
    ref = records["reference"]
    configs = {}
    for name in names:
        configs[name] = {"kind": CONFIGS[name]["kind"], "backend": CONFIGS[name]["backend"],
                         "config": CONFIGS[name]["config"], "sampling": CONFIGS[name]["sampling"],
                         "full_set": full_set_summary(ref, records[name])}
    log(f"subsampling: {args.draws} draws x n in {ns} ...")
    t1 = time.time()
    results = run_bench(records, ns, args.draws, args.alpha, log)

    faults = [n for n in names if CONFIGS[n]["kind"] == "fault"]
    cleans = [n for n in names if CONFIGS[n]["kind"] == "clean"]
    target = {}
    if faults and "100" in next(iter(results.values())):
        three = min(faults, key=lambda n: abs(configs[n]["full_set"]["delta_points"] + 3.0))
        paired = ("mcnemar", "logprob", "verdict")
        best = max(paired, key=lambda k: results[three]["100"][k])
        fa = {c: {k: max(results[c][str(n)][k] for n in ns) for k in METHODS} for c in cleans}
        fa_max_best = max((fa[c][best] for c in cleans), default=0.0)
        target = {"fault": three, "fault_delta_points": configs[three]["full_set"]["delta_points"], "n": 100,
                  "best_paired_method": best, "detection_rate": results[three]["100"][best],
                  "detection_rates_at_100": results[three]["100"],
                  "false_alarm_max_over_clean_and_n": fa, "false_alarm_max_best_method": fa_max_best,
                  "met": results[three]["100"][best] >= 0.8 and fa_max_best <= args.alpha,
                  "rule": ">= 80% of draws at n = 100 by the best paired method, false alarms <= alpha"}
    ref_acc = 100.0 * sum(bool(r["correct"]) for r in ref) / len(ref)
    out = {
        "meta": {"alpha": args.alpha, "draws": args.draws, "ns": ns, "reference": REFERENCE,
                 "reference_accuracy_full_set": ref_acc, "full_set_size": len(ref), "model": args.model,
                 "dataset": args.dataset, "kl_tolerance": DEFAULT_KL_TOLERANCE,
                 "kl_exceed_rate": DEFAULT_KL_EXCEED_RATE,
                 "trtllm_theta": {str(n): trtllm_theta(n) for n in ns},
                 "methods": {"trtllm_gate": "unpaired: candidate accuracy on n < accuracy_core threshold(n, full-set "
                                            "reference accuracy)",
                             "mcnemar": "exact McNemar two-sided p < alpha, more losses than gains",
                             "logprob": "KL exceedance test p < alpha and direction regressed",
                             "logprob_divergent": "KL exceedance test p < alpha (any direction)",
                             "verdict": "harness.comparison.verdict.compare_runs == 'regressed' (alpha split over both tests)"},
                 "eval_seconds": round(t_eval, 1), "stats_seconds": round(time.time() - t1, 1),
                 "written_at": time.strftime("%Y-%m-%dT%H:%M:%S")},
        "configs": configs,
        "detection_rate": results,
        "target": target,
    }
    from harness.comparison.verdict import json_safe

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(json_safe(out), f, indent=2)
    # human table
    print(f"reference hf accuracy on {len(ref)} rows: {ref_acc:.1f}%; alpha {args.alpha}; {args.draws} draws")
    hdr = f"{'config':34s} {'delta':>6s} {'KLmean':>8s} " + " ".join(f"{'n=' + str(n):>28s}" for n in ns)
    print(hdr)
    print(f"{'':34s} {'':6s} {'':8s} " + " ".join(f"{'gate mcn lp verdict':>28s}" for _ in ns))
    for name in names:
        fs = configs[name]["full_set"]
        cells = []
        for n in ns:
            r = results[name][str(n)]
            cells.append(f"{r['trtllm_gate']:5.2f} {r['mcnemar']:5.2f} {r['logprob']:5.2f} {r['verdict']:5.2f}")
        kl = fs["kl_mean"]
        print(f"{name:34s} {fs['delta_points']:+6.1f} {kl if kl is not None else float('nan'):8.2g} "
              + " ".join(f"{c:>28s}" for c in cells))
    if target:
        print(f"target: {target['fault']} ({target['fault_delta_points']:+.1f} points) at n=100 detected in "
              f"{100 * target['detection_rate']:.0f}% of draws by {target['best_paired_method']}; worst false-alarm "
              f"rate of that method on clean configs {100 * target['false_alarm_max_best_method']:.0f}% -> "
              f"{'MET' if target['met'] else 'NOT MET'}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
