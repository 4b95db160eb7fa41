#!/usr/bin/env python
"""Measure the ad-emulator on the demo model: each planted fault's effect, clean-transform
tolerances, and the emulator's overhead over the hf backend. Writes JSON (default
reports/bench_emulator.json) and prints a table; the numbers in configs/emulator/FAULTS.md come
from this script.

    python scripts/bench_emulator.py [--samples 1200] [--out reports/bench_emulator.json] [--only NAME ...]
    python scripts/bench_emulator.py --timing        # fresh-process wall time, hf vs ad-emulator (engine_noise on
                                                     # and off), 100 prompts

Per case: accuracy, delta vs hf on the same samples, answer agreement, mean KL of the A-D letter
distribution (hf || emulator), share of empty outputs and of non-finite log-probabilities.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BF16 = "harness/assets/demo_model"
FP8 = "harness/assets/demo_model_fp8"


def T(**transforms):
    return {"transforms": transforms}


# (name, model, config, what it shows)
CASES = [
    ("clean default pipeline", BF16, {}, "exact"),
    ("clean minimal (torch-simple, fusions off)", BF16,
     {"compile_backend": "torch-simple", **T(fuse_rmsnorm={"enabled": False}, fuse_silu_mul={"enabled": False},
                                             optimize_rope={"enabled": False})}, "exact"),
    ("clean all optional fusions on", BF16, T(fuse_add_rms_norm={"enabled": True}, multi_stream_gemm={"enabled": True}),
     "exact"),
    ("clean attn_backend torch", BF16, {"attn_backend": "torch"}, "float"),
    ("clean world_size 2", BF16, {"world_size": 2}, "float"),
    ("clean world_size 4", BF16, {"world_size": 4}, "float"),
    ("clean fp8 fake-quant", FP8, T(fuse_fp8_linear={"enabled": False}), "exact vs hf on the FP8 checkpoint"),
    ("clean fp8 kernel (W8A8)", FP8, {}, "tolerance"),
    ("missing_dequant_scale @quantize", FP8, T(quantize_fp8_linear_from_config={"fault": "missing_dequant_scale"}), ""),
    ("missing_dequant_scale @fuse_fp8_linear", FP8, T(fuse_fp8_linear={"fault": "missing_dequant_scale"}), ""),
    ("inverted_scale @quantize", FP8, T(quantize_fp8_linear_from_config={"fault": "inverted_scale"}), ""),
    ("inverted_scale @fuse_fp8_linear", FP8, T(fuse_fp8_linear={"fault": "inverted_scale"}), ""),
    ("wrong_block_scale @quantize", FP8, T(quantize_fp8_linear_from_config={"fault": "wrong_block_scale"}), ""),
    ("wrong_block_scale @quantize, strength 6", FP8,
     T(quantize_fp8_linear_from_config={"fault": "wrong_block_scale", "fault_strength": 6}), ""),
    ("wrong_block_scale @fuse_fp8_linear", FP8, T(fuse_fp8_linear={"fault": "wrong_block_scale"}), ""),
    ("to_instead_of_view @fuse_fp8_linear", FP8, T(fuse_fp8_linear={"fault": "to_instead_of_view"}), ""),
    ("wrong_softmax_scale", BF16, T(insert_cached_attention={"fault": "wrong_softmax_scale"}), ""),
    ("wrong_softmax_scale p=0.9", BF16,
     T(insert_cached_attention={"fault": "wrong_softmax_scale", "fault_strength": 0.9}), ""),
    ("rope_applied_twice @optimize_rope", BF16, T(optimize_rope={"fault": "rope_applied_twice"}), ""),
    ("kv_cache_garbage", BF16, T(initialize_cache={"fault": "kv_cache_garbage"}), ""),
    ("nan_on_prefill", BF16, T(match_repeat_kv={"fault": "nan_on_prefill"}), ""),
    ("low_precision_rope (default 6.5)", BF16, T(optimize_rope={"fault": "low_precision_rope"}), ""),
    ("low_precision_rope 6.7", BF16, T(optimize_rope={"fault": "low_precision_rope", "fault_strength": 6.7}), ""),
    ("low_precision_rope 6.3", BF16, T(optimize_rope={"fault": "low_precision_rope", "fault_strength": 6.3}), ""),
    ("low_precision_rope 5", BF16, T(optimize_rope={"fault": "low_precision_rope", "fault_strength": 5}), ""),
    ("low_precision_norm (default 2)", BF16, T(fuse_rmsnorm={"fault": "low_precision_norm"}), ""),
    ("hardcoded_eps (default)", BF16, T(fuse_rmsnorm={"fault": "hardcoded_eps"}), ""),
    ("hardcoded_eps 0.1", BF16, T(fuse_rmsnorm={"fault": "hardcoded_eps", "fault_strength": 0.1}), ""),
    ("hardcoded_eps 0.2", BF16, T(fuse_rmsnorm={"fault": "hardcoded_eps", "fault_strength": 0.2}), ""),
    ("compiled_lowering_bug, torch-cudagraph", BF16, T(fuse_silu_mul={"fault": "compiled_lowering_bug"}), ""),
    ("compiled_lowering_bug, torch-simple", BF16,
     {"compile_backend": "torch-simple", **T(fuse_silu_mul={"fault": "compiled_lowering_bug"})}, "no effect"),
    ("norm_weight_applied_twice alone", BF16,
     T(fuse_rmsnorm={"enabled": False}, fuse_add_rms_norm={"enabled": True, "fault": "norm_weight_applied_twice"}),
     "no effect"),
    ("norm_weight_applied_twice + fuse_rmsnorm", BF16,
     T(fuse_add_rms_norm={"enabled": True, "fault": "norm_weight_applied_twice"}), ""),
    ("norm_weight_applied_twice + fuse_rmsnorm, strength 4", BF16,
     T(fuse_add_rms_norm={"enabled": True, "fault": "norm_weight_applied_twice", "fault_strength": 4}), ""),
    ("sharding faults at world_size 1", BF16,
     T(detect_sharding={"fault": "shard_gate_projection"}, sharding_transform_executor={"fault": "double_allreduce"},
       fuse_allreduce_residual_rmsnorm={"fault": "lowprecision_allreduce"}), "no effect"),
    ("double_allreduce, ws 4", BF16, {"world_size": 4, **T(sharding_transform_executor={"fault": "double_allreduce"})}, ""),
    ("double_allreduce, ws 2", BF16, {"world_size": 2, **T(sharding_transform_executor={"fault": "double_allreduce"})}, ""),
    ("shard_gate_projection, ws 2", BF16, {"world_size": 2, **T(detect_sharding={"fault": "shard_gate_projection"})}, ""),
    ("head_reshape_stride, ws 2", BF16,
     {"world_size": 2, **T(sharding_transform_executor={"fault": "head_reshape_stride"})}, ""),
    ("lowprecision_allreduce, ws 2", BF16,
     {"world_size": 2, **T(fuse_allreduce_residual_rmsnorm={"fault": "lowprecision_allreduce"})}, ""),
    ("demo config (configs/demo/ad_demo.yaml)", BF16, "configs/demo/ad_demo.yaml", ""),
]


def letter_kl(ref, cand) -> float:
    ks = []
    for a, b in zip(ref.records, cand.records):
        pa = {k: math.exp(v) for k, v in a["answer_logprobs"].items()}
        pb = {k: math.exp(v) for k, v in b["answer_logprobs"].items()}
        za, zb = sum(pa.values()), sum(pb.values())
        try:
            ks.append(sum(pa[k] / za * (math.log(pa[k] / za) - math.log(pb[k] / zb)) for k in pa))
        except (ValueError, ZeroDivisionError):
            ks.append(float("nan"))
    return sum(ks) / len(ks)


def faults(args) -> dict:
    from harness.config import load_yaml
    from harness.evaluation.run import run_evaluation
    from harness.evaluation.spec import EvalSpec

    refs, rows = {}, []
    for name, model, cfg, expect in CASES:
        if args.only and not any(o in name for o in args.only):
            continue
        if model not in refs:
            refs[model] = run_evaluation(EvalSpec(backend="hf", model=model, samples=args.samples))
        ref = refs[model]
        if isinstance(cfg, str):
            cfg = load_yaml(REPO / cfg)
        t0 = time.time()
        res = run_evaluation(EvalSpec(backend="ad-emulator", model=model, config=cfg, samples=args.samples))
        row = {"case": name, "model": model, "expect": expect, "status": res.status, "seconds": round(time.time() - t0, 2)}
        if res.status == "ok":
            n = len(res.records)
            row.update(
                hf_acc=round(ref.metrics["score"], 2), acc=round(res.metrics["score"], 2),
                delta=round(res.metrics["score"] - ref.metrics["score"], 2),
                agreement=round(sum(a["output"] == b["output"] for a, b in zip(ref.records, res.records)) / n, 3),
                letter_kl=letter_kl(ref, res),
                max_abs_dlogprob=max(abs(a["answer_logprobs"][k] - b["answer_logprobs"][k])
                                     for a, b in zip(ref.records, res.records) for k in a["answer_logprobs"]),
                empty=round(sum(r["output"].strip() == "" for r in res.records) / n, 3),
                nonfinite=round(sum(r["nonfinite"] for r in res.records) / n, 3),
                per_subject={k: round(v["score"], 1) for k, v in (res.metrics.get("per_subject") or {}).items()},
            )
        else:
            row["error"] = res.error
        rows.append(row)
        print(f"{name:52s} acc={row.get('acc')} d={row.get('delta')} agree={row.get('agreement')} "
              f"KL={row.get('letter_kl', float('nan')):.2e} empty={row.get('empty')} nonfin={row.get('nonfinite')}",
              flush=True)
    return {"samples": args.samples, "rows": rows}


def timing(args) -> dict:
    """Wall time of a fresh process evaluating 100 demo prompts, hf vs ad-emulator (default and demo)."""
    code = ("import sys,time,json; t=time.time(); sys.path.insert(0,{repo!r});"
            "from harness.evaluation.spec import EvalSpec; from harness.evaluation.run import run_evaluation; from harness.config import load_yaml;"
            "cfg={cfg};"
            "r=run_evaluation(EvalSpec(backend={be!r}, model={model!r}, config=cfg, samples=100));"
            "print(json.dumps({{'wall': time.time()-t, 'status': r.status, 'timings': r.info.get('timings'),"
            " 'pipeline_s': r.info.get('pipeline_s')}}))")
    cases = [("hf", "hf", "{}"), ("ad-emulator default", "ad-emulator", "{}"),
             ("ad-emulator default, engine_noise off", "ad-emulator", "{'engine_noise': {'strength': 0}}"),
             ("ad-emulator ad_demo.yaml", "ad-emulator", "load_yaml('configs/demo/ad_demo.yaml')")]
    out = {label: [] for label, _, _ in cases}
    for _ in range(args.repeat):  # interleaved, so a change of machine load hits every case alike
        for label, be, cfg in cases:
            p = subprocess.run([sys.executable, "-c", code.format(repo=str(REPO), cfg=cfg, be=be, model=BF16)],
                               capture_output=True, text=True, cwd=REPO)
            out[label].append(json.loads(p.stdout.strip().splitlines()[-1]))
    for label, runs in out.items():
        print(label, "wall", [round(r["wall"], 2) for r in runs], "load_s", [round(r["timings"]["load_s"], 3) for r in runs],
              "generate_s", [round(r["timings"]["generate_s"], 3) for r in runs], flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1200)
    ap.add_argument("--out", default="reports/bench_emulator.json")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--timing", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    result = timing(args) if args.timing else faults(args)
    out = Path(args.out)
    if args.timing:
        out = out.with_name(out.stem + "_timing.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
