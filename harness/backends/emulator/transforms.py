"""The built-in transforms: name -> ``fn(model, options, context) -> num_matches``.

Names are AD's (NVIDIA/TensorRT-LLM ``tensorrt_llm/_torch/auto_deploy/config/default.yaml``, the
newest variant read @dc325380); each function does, on the emulated transformers
model, what the AD transform of that name does to the FX graph -- or records its matches when the
emulated model is already in the form the transform would produce (the pattern matchers).
A transform returns how many sites it rewrote (AD's ``num_matches``); 0 is logged as skipped.

Faults (``options["fault"]``, validated against ``faults.FAULTS`` before anything runs) are
applied inside their host transform only.
"""
from __future__ import annotations

import torch

from harness.backends.emulator import compile as compile_mod
from harness.backends.emulator import quant, sharding
from harness.backends.emulator.modules import (
    CachedRotaryEmbedding, EmuAttention, EmuDecoderLayer, EmuMLP, FusedAddRMSNorm, FusedRMSNorm,
    FusedSiluMul, ShardedLinear, replace_module,
)
from transformers.models.llama import modeling_llama as hf_llama

from harness.backends.emulator.attention import KERNELS as ATTN_BACKENDS  # attn_backend -> CPU kernel


def _attns(model) -> list[EmuAttention]:
    return [m for m in model.modules() if isinstance(m, EmuAttention)]


def _layers(model) -> list[EmuDecoderLayer]:
    return [m for m in model.modules() if isinstance(m, EmuDecoderLayer)]


def _gqa(model) -> int:
    return sum(a.num_heads != a.num_kv_heads for a in _attns(model))


# ---------------------------------------------------------------- K: factory / export / cleanup
def build_model(model, opts, ctx) -> int:
    return 1  # the backend built the model (transformers, CPU, float32) before the pipeline runs


def export_to_gm(model, opts, ctx) -> int:
    return 1  # the emulated module tree plays the role of the exported GraphModule


def no_match(model, opts, ctx) -> int:
    return 0  # nothing of this kind in a dense Llama (MoE, NVFP4, no-op slices, ...)


def load_weights(model, opts, ctx) -> int:
    return 1  # weights were loaded with the model (transformers from_pretrained)


def move_inputs_to_device(model, opts, ctx) -> int:
    return 1


# ---------------------------------------------------------------- attention pattern matchers
def _plant_attention_fault(model, opts) -> None:
    fault = opts.get("fault")
    for a in _attns(model):
        if fault == "wrong_softmax_scale":
            p = float(opts.get("fault_strength") if opts.get("fault_strength") is not None else 1.0)
            a.scaling = float(a.head_dim) ** -p
        elif fault == "nan_on_prefill":
            a.prefill_nan = True


def match_repeat_kv(model, opts, ctx) -> int:
    n = _gqa(model)
    if n:
        _plant_attention_fault(model, opts)
    return n


def match_eager_attention(model, opts, ctx) -> int:
    n = len(_attns(model)) if model.config._attn_implementation == "eager" else 0
    if n:
        _plant_attention_fault(model, opts)
    return n


def match_sdpa_to_torch_attention(model, opts, ctx) -> int:
    n = len(_attns(model)) if model.config._attn_implementation == "sdpa" else 0
    if n:
        _plant_attention_fault(model, opts)
    return n


def match_grouped_attention(model, opts, ctx) -> int:
    n = _gqa(model)
    if n:
        _plant_attention_fault(model, opts)
    return n


def match_attention_layout(model, opts, ctx) -> int:
    n = len(_attns(model))
    _plant_attention_fault(model, opts)
    return n


# ---------------------------------------------------------------- RoPE
def match_rope_pattern(model, opts, ctx) -> int:
    attns = _attns(model)
    if opts.get("fault") == "rope_applied_twice":
        for a in attns:
            a.rope_applications += 1
    return len(attns)


def match_rope_layout(model, opts, ctx) -> int:
    return len(_attns(model))


def optimize_rope(model, opts, ctx) -> int:
    """LlamaRotaryEmbedding -> a precomputed cos/sin cache indexed by position (flashinfer rope)."""
    n = 0
    for path, mod in list(model.named_modules()):
        if type(mod) is hf_llama.LlamaRotaryEmbedding and getattr(mod, "rope_type", "default") == "default":
            max_pos = int(getattr(model.config, "max_position_embeddings", 4096) or 4096)
            bits = None
            if opts.get("fault") == "low_precision_rope":
                bits = float(opts.get("fault_strength") if opts.get("fault_strength") is not None else 6.5)
            replace_module(model, path, CachedRotaryEmbedding(mod, max_pos, bits))
            n += 1
    if n and opts.get("fault") == "rope_applied_twice":
        for a in _attns(model):
            a.rope_applications += 1
    return len(_attns(model)) if n else 0


# ---------------------------------------------------------------- norms
def match_rmsnorm_pattern(model, opts, ctx) -> int:
    return sum(isinstance(m, (hf_llama.LlamaRMSNorm, FusedRMSNorm)) for m in model.modules())


def fuse_rmsnorm(model, opts, ctx) -> int:
    """LlamaRMSNorm -> FusedRMSNorm (same weight, eps from the config)."""
    eps_override = None
    if opts.get("fault") == "hardcoded_eps":
        eps_override = float(opts.get("fault_strength") if opts.get("fault_strength") is not None else 0.05)
    n = 0
    for path, mod in list(model.named_modules()):
        if type(mod) is hf_llama.LlamaRMSNorm:
            eps = mod.variance_epsilon if eps_override is None else eps_override
            fused = FusedRMSNorm(mod.weight, eps)
            if opts.get("fault") == "low_precision_norm":
                fused.out_mantissa_bits = float(opts.get("fault_strength") if opts.get("fault_strength") is not None
                                                else 2.0)
            replace_module(model, path, fused)
            n += 1
    return n


def fuse_add_rms_norm(model, opts, ctx) -> int:
    """Every RMSNorm fed by a residual add (post_attention_layernorm of each layer,
    input_layernorm of every layer but the first, the final norm) -> fused add+norm."""
    layers = _layers(model)
    sites = []
    for i, layer in enumerate(layers):
        if i > 0:
            sites.append((layer, "input_layernorm"))
        sites.append((layer, "post_attention_layernorm"))
    sites.append((model.model, "norm"))
    n = 0
    for parent, attr in sites:
        norm = getattr(parent, attr)
        if isinstance(norm, FusedAddRMSNorm):
            continue
        fused = FusedAddRMSNorm(norm)
        if opts.get("fault") == "norm_weight_applied_twice":
            fused.weight_again = float(opts.get("fault_strength") if opts.get("fault_strength") is not None else 1)
        setattr(parent, attr, fused)
        n += 1
    return n


# ---------------------------------------------------------------- MLP
def fuse_silu_mul(model, opts, ctx) -> int:
    n = 0
    for mlp in model.modules():
        if isinstance(mlp, EmuMLP) and mlp.silu_mul is None and mlp.config.hidden_act == "silu":
            op = FusedSiluMul()
            op.lowering_bug = opts.get("fault") == "compiled_lowering_bug"
            mlp.silu_mul = op
            n += 1
    return n


# ---------------------------------------------------------------- cache / attention backend
def _garbage_vectors(model, ctx) -> dict[int, torch.Tensor]:
    """Per layer, a V-cache value whose attention output (through o_proj) pushes the residual
    stream towards a direction that decodes to a special token (EOS first). A real overflowed or
    uninitialised cache holds arbitrary bytes; the emulator picks the bytes that make the
    documented symptom (empty output / immediate EOS) deterministic on any Llama."""
    lm = model.get_output_embeddings().weight.detach().float()  # (V, H)
    norm = model.model.norm
    gamma = norm.weight.detach().float()
    attns = _attns(model)
    specials = [t for t in (ctx.get("eos_token_id"), ctx.get("pad_token_id"), ctx.get("bos_token_id"))
                if t is not None and 0 <= int(t) < lm.shape[0]]
    if not specials:
        specials = [0]
    big = 1e4
    for tok in specials:
        target = (lm[tok] - lm.mean(0)) * gamma / (gamma * gamma + 1e-6)
        vecs, total = {}, torch.zeros_like(target)
        for i, a in enumerate(attns):
            wo = _dense_weight(a.o_proj)  # (H, heads*D)
            rep = torch.zeros(a.num_heads * a.head_dim, a.num_kv_heads * a.head_dim)
            groups = a.num_heads // a.num_kv_heads
            for h in range(a.num_heads):
                kv = h // groups
                rep[h * a.head_dim:(h + 1) * a.head_dim, kv * a.head_dim:(kv + 1) * a.head_dim] = torch.eye(a.head_dim)
            m = wo @ rep
            g = torch.linalg.lstsq(m, target.unsqueeze(1)).solution.squeeze(1)
            g = g / (m @ g).norm().clamp(min=1e-12) * big
            vecs[i] = g
            total = total + m @ g
        logits = lm @ (gamma * total / total.pow(2).mean().sqrt())
        if int(torch.argmax(logits)) == tok:
            return vecs
    return vecs  # best effort: the last candidate


def _dense_weight(mod) -> torch.Tensor:
    if isinstance(mod, ShardedLinear):  # row-parallel o_proj: the ranks' input slices side by side
        return torch.cat([_dense_weight(s) for s in mod.shards], dim=1)
    if hasattr(mod, "dequantized_weight"):
        return mod.dequantized_weight().float()
    if hasattr(mod, "weight_fp8"):
        return mod.weight_fp8().float() * mod.weight_scale
    return mod.weight.detach().float()


def _plant_cache_fault(model, opts, ctx) -> None:
    if opts.get("fault") == "kv_cache_garbage":
        vecs = _garbage_vectors(model, ctx)
        for i, a in enumerate(_attns(model)):
            a.kv_garbage = vecs[i]


def insert_cached_attention(model, opts, ctx) -> int:
    """Select the attention kernel of the backend (``backend``, the ``attn_backend`` shortcut); each
    backend has its own numerics (harness/backends/emulator/attention.py). All read the same KV cache.
    ``attention_kernel_bug`` lives in one backend's kernel (``fault_backend``)."""
    from harness.backends.emulator import attention

    backend = opts.get("backend") or "trtllm"
    if backend not in ATTN_BACKENDS:
        raise ValueError(f"attention backend {backend!r} is not one of {', '.join(ATTN_BACKENDS)}")
    bug = None
    if opts.get("fault") == "attention_kernel_bug" and (opts.get("fault_backend") or backend) == backend:
        bug = float(opts.get("fault_strength") if opts.get("fault_strength") is not None else 1.0)
    impl = attention.implementation(backend, bug)
    if model.config._attn_implementation != impl:
        model.set_attn_implementation(impl)
    _plant_attention_fault(model, opts)
    _plant_cache_fault(model, opts, ctx)
    return len(_attns(model))


def initialize_cache(model, opts, ctx) -> int:
    _plant_cache_fault(model, opts, ctx)
    return len(_attns(model))


def resize_kv_cache(model, opts, ctx) -> int:
    _plant_cache_fault(model, opts, ctx)
    return 1


# ---------------------------------------------------------------- multi-stream (no numeric effect)
def multi_stream_gemm(model, opts, ctx) -> int:
    return len(_attns(model))  # q/k/v GEMMs could run on parallel streams; numerics unchanged


# ---------------------------------------------------------------- the table
TRANSFORMS = {
    "build_model": build_model,
    "export_to_gm": export_to_gm,
    "cleanup_noop_slice": no_match,
    "cleanup_noop_add": no_match,
    "cleanup_input_constraints": no_match,
    "match_moe_pattern": no_match,
    "match_repeat_kv": match_repeat_kv,
    "match_eager_attention": match_eager_attention,
    "match_sdpa_to_torch_attention": match_sdpa_to_torch_attention,
    "match_grouped_attention": match_grouped_attention,
    "match_attention_layout": match_attention_layout,
    "match_rope_pattern": match_rope_pattern,
    "match_rope_layout": match_rope_layout,
    "match_rmsnorm_pattern": match_rmsnorm_pattern,
    "eliminate_redundant_transposes": no_match,
    "quantize_fp8_linear_from_config": quant.quantize_fp8_linear_from_config,
    "quantize_nvfp4_linear_from_config": no_match,
    "detect_sharding": sharding.detect_sharding,
    "sharding_transform_executor": sharding.sharding_transform_executor,
    "load_weights": load_weights,
    "move_inputs_to_device": move_inputs_to_device,
    "fuse_gemms": no_match,
    "fuse_fp8_linear": quant.fuse_fp8_linear,
    "fuse_nvfp4_linear": no_match,
    "fuse_allreduce_residual_rmsnorm": sharding.fuse_allreduce_residual_rmsnorm,
    "fuse_rmsnorm": fuse_rmsnorm,
    "fuse_silu_mul": fuse_silu_mul,
    "fuse_add_rms_norm": fuse_add_rms_norm,
    "optimize_rope": optimize_rope,
    "insert_cached_attention": insert_cached_attention,
    "initialize_cache": initialize_cache,
    "resize_kv_cache": resize_kv_cache,
    "multi_stream_moe": no_match,
    "multi_stream_gemm": multi_stream_gemm,
    "multi_stream_mla_attn": no_match,
    "compile_model": compile_mod.compile_model,
}
