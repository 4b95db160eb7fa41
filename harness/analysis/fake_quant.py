"""Phase 4a helpers: is the model quantized / MoE, and the fake-quantization debug YAML.

Fake-quant mode (docs/method.md, Phase 4a, step 3): AD's ``quantize_*``
transforms (pattern_matcher stage) insert reference ops such as
``auto_deploy::torch_fake_quant_fp8_linear`` (quantize the input, dequantize input and weight,
high-precision ``torch.matmul``: tensorrt_llm/_torch/auto_deploy/custom_ops/quantization/torch_quant.py@319f5114);
the ``fuse_*`` quantization fusions (post_load_fusion) then swap those for low-precision kernels.
Disabling every quantization fusion keeps the scales in play but runs all arithmetic in high
precision: if accuracy recovers, the quantized kernel is the bug; if not, the scales or weights.

``fake_quant_overlay`` disables every ``quant_fusion``-category transform (configs/knob_categories.yaml)
that exists in the default.yaml in force *and is on in the base config*; transforms whose name
contains ``moe`` only when the model is a mixture-of-experts model. KV-cache quantization is not
undone by this.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from harness.config import Catalogue, deep_merge, dump_yaml, resolve

# model config.json keys that make a model mixture-of-experts (HF configs: Mixtral/Qwen-MoE
# num_local_experts / num_experts, DeepSeek n_routed_experts, others moe_num_experts / num_experts_per_tok)
MOE_KEYS = ("num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts", "num_experts_per_tok",
            "moe_intermediate_size")

# why a quantization fusion is disabled, by name pattern (first match wins)
WHY = [
    (r"fuse_(fp8|nvfp4|finegrained_fp8)_linear",
     "swaps the fake-quant {fmt} linear (quantize input, dequantize, high-precision matmul) for the low-precision "
     "{fmt} GEMM kernel; off keeps the fake-quant reference path (docs/method.md Phase 4a step 3)"),
    (r"fuse_.*moe", "swaps the reference quantized MoE op for the fused low-precision {fmt} MoE kernel; off keeps "
                    "the per-expert reference path (MoE models only)"),
    (r"fuse_.*gemms", "fuses sibling quantized GEMMs into one low-precision {fmt} GEMM"),
    (r"match_.*swiglu_pattern", "matches the quantized SwiGLU MLP so it can be fused into one low-precision {fmt} "
                                "kernel; off leaves the separate fake-quant linears"),
    (r"fuse_.*swiglu", "fuses the quantized SwiGLU MLP into one low-precision {fmt} kernel"),
    (r"fuse_rmsnorm_quant_.*", "fuses RMSNorm with the next activation's {fmt} quantization into one kernel"),
    (r"fuse_relu2_quant_.*", "fuses ReLU^2 with {fmt} activation quantization into one kernel"),
    (r"fuse_.*attn_quant_.*", "fuses {fmt} output quantization into the attention kernel"),
    (r".*", "quantization fusion (category quant_fusion): replaces fake-quant ops with a low-precision {fmt} kernel"),
]


def _fmt(name: str) -> str:
    for tag, label in (("finegrained_fp8", "block-scaled FP8"), ("nvfp4", "NVFP4"), ("mxfp4", "MXFP4"),
                       ("fp4", "FP4"), ("fp8", "FP8")):
        if tag in name:
            return label
    return "quantized"


def why(name: str) -> str:
    for pat, text in WHY:
        if re.fullmatch(pat, name):
            return text.format(fmt=_fmt(name))
    return ""


def read_model_config(model: str | Path | None) -> dict | None:
    if not model:
        return None
    p = Path(model) / "config.json"
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_moe(model: str | Path | None) -> bool | None:
    """True/False from the model's config.json (also a nested text_config); None when unknown."""
    cfg = read_model_config(model)
    if cfg is None:
        return None
    for c in (cfg, cfg.get("text_config") or {}, cfg.get("llm_config") or {}):
        for k in MOE_KEYS:
            v = c.get(k)
            if isinstance(v, (int, float)) and v and v > 1 or (k == "num_experts_per_tok" and v):
                return True
    return False


def quant_info(model: str | Path | None, resolved: dict | None = None) -> dict:
    """Whether the model or config is quantized: {"quantized", "algo", "kv_cache_algo", "source"}.

    The checkpoint is read as the PyTorch backend reads it (``harness.backends.checkpoint``: ModelOpt
    ``hf_quant_config.json`` or HF ``config.json`` ``quantization_config``); a ``quant_config`` /
    ``quantization`` entry in the AD config counts too.
    """
    from harness.backends.checkpoint import read_quant_meta

    meta = read_quant_meta(model) if model else None
    if meta is not None and (meta.quant_algo or meta.quant_method):
        return {"quantized": True, "algo": meta.quant_algo or meta.quant_method,
                "kv_cache_algo": meta.kv_cache_quant_algo, "source": meta.source}
    for key in ("quant_config", "quantization"):
        v = (resolved or {}).get(key)
        if isinstance(v, dict) and (v.get("quant_algo") or v.get("algo")):
            return {"quantized": True, "algo": str(v.get("quant_algo") or v.get("algo")),
                    "kv_cache_algo": v.get("kv_cache_quant_algo"), "source": f"config {key}"}
        if isinstance(v, str) and v.lower() not in ("", "none", "no"):
            return {"quantized": True, "algo": v, "kv_cache_algo": None, "source": f"config {key}"}
    return {"quantized": False, "algo": None, "kv_cache_algo": meta.kv_cache_quant_algo if meta else None,
            "source": None}


def fake_quant_entries(catalogue: Catalogue, base: dict | None, moe: bool | None) -> tuple[list[tuple[str, str]], dict]:
    """([(transform, why)] to disable, {"moe_skipped": [...], "already_off": [...]}) in pipeline order."""
    full = resolve(catalogue, base or {})
    entries, moe_skipped, already_off = [], [], []
    names = [n for n in catalogue.names() if catalogue.category_of(n) == "quant_fusion"]
    for name in catalogue.ordered(names):
        conf = (full.get("transforms") or {}).get(name) or {}
        if not conf.get("enabled", True):
            already_off.append(name)
            continue
        if "moe" in name and not moe:
            moe_skipped.append(name)
            continue
        stage = catalogue.stage_of(name)
        entries.append((name, f"{why(name)} [stage {stage}]"))
    return entries, {"moe_skipped": moe_skipped, "already_off": already_off}


def fake_quant_overlay(catalogue: Catalogue, base: dict | None, moe: bool | None) -> dict:
    """The base config with every applicable quantization fusion disabled."""
    entries, _ = fake_quant_entries(catalogue, base, moe)
    return deep_merge(base or {}, {"transforms": {n: {"enabled": False} for n, _ in entries}})


def _indent(text: str, n: int) -> str:
    pad = " " * n
    return "".join(pad + line if line.strip() else line for line in text.splitlines(True))


def render_fake_quant_yaml(catalogue: Catalogue, base: dict | None, moe: bool | None, base_path: str | None = None,
                           model: str | None = None) -> str:
    """fake_quant_debug.yaml text: the base config plus the fake-quant entries, a comment per key."""
    base = base or {}
    entries, extra = fake_quant_entries(catalogue, base, moe)
    off = {n for n, _ in entries}
    moe_txt = {True: "yes", False: "no", None: "unknown (pass --model to decide)"}[moe]
    head = [
        "# fake_quant_debug.yaml - written by `python -m harness fake-quant`.",
        "# AD accuracy method, Phase 4a step 3: run the quantized model in fake-quantization mode. Every",
        "# quantization fusion (fake-quant op -> low-precision kernel) that exists in the default.yaml in force",
        f"#   {catalogue.source}",
        "# and is on in the base config is disabled below, so quantized layers run as quantize -> dequantize ->",
        "# high-precision matmul. Accuracy recovers -> the quantized kernel is the bug; it does not -> the",
        "# scales or weight data are (docs/method.md, Phase 4a step 2 table). KV-cache quantization is not undone.",
        f"# Base config: {base_path or '(none)'}. Model: {model or '(not given)'}. MoE: {moe_txt}.",
        "# Pass it as --config / --extra_llm_api_options (trtllm-serve, trtllm-bench) or yaml_extra (AD LLM API).",
    ]
    if extra["moe_skipped"]:
        head.append("# MoE fusions left alone (" + ("not an MoE model" if moe is False else "MoE unknown") + "): "
                    + ", ".join(extra["moe_skipped"]))
    if extra["already_off"]:
        head.append("# Already off in the base config: " + ", ".join(extra["already_off"]))
    if not entries:
        head.append("# No quantization fusion is on in this config: fake-quant mode is the config itself.")
    out = "\n".join(head) + "\n"
    top = {k: v for k, v in base.items() if k != "transforms"}
    if top:
        out += dump_yaml(top)
    transforms = dict(base.get("transforms") or {})
    if transforms or entries:
        out += "transforms:\n"
    for name, conf in transforms.items():
        if name in off:
            continue
        out += _indent(dump_yaml({name: conf}), 2)
    for name, reason in entries:
        conf = deep_merge(transforms.get(name) or {}, {"enabled": False})
        out += f"  # {name}: {reason}\n"
        out += _indent(dump_yaml({name: conf}), 2)
    expect = fake_quant_overlay(catalogue, base, moe)
    assert (yaml.safe_load(out) or {}) == expect, "fake-quant YAML does not round-trip"
    return out
