"""Tensor parallelism, emulated in one process (``detect_sharding`` + ``sharding_transform_executor``
+ ``fuse_allreduce_residual_rmsnorm``).

AD (``transform/library/sharding.py``, heuristic TP sharding): q/k/v and gate/up projections are
split column-wise (each rank owns whole heads / a slice of the intermediate features), o_proj and
down_proj row-wise, followed by ``torch_dist_all_reduce``; with ``world_size < 2`` detect_sharding
logs "Skipping sharding for single device". Here every rank's slice is a separate projection inside
a ``ShardedLinear`` and the all-reduce is an explicit sum (``modules.all_reduce``), so the
numerics equal the unsharded model up to float summation order.
"""
from __future__ import annotations

from harness.backends.emulator.modules import (
    EmuAttention, EmuDecoderLayer, EmuMLP, FusedAllReduceAddRMSNorm, ShardedLinear, slice_linear,
)


def _split(n: int, ws: int, what: str) -> int:
    if n % ws:
        raise ValueError(f"{what} = {n} is not divisible by world_size {ws}")
    return n // ws


def detect_sharding(model, opts: dict, ctx: dict) -> int:
    """Record a TP plan on the model (``model._emu_sharding``); no match at world_size 1."""
    ws = int(ctx.get("world_size") or 1)
    if ws < 2:
        return 0
    fault = opts.get("fault")
    plan = {}
    for path, mod in model.named_modules():
        if isinstance(mod, EmuAttention):
            _split(mod.num_heads, ws, "num_attention_heads")
            if mod.num_kv_heads % ws and ws % mod.num_kv_heads:
                raise ValueError(f"num_key_value_heads = {mod.num_kv_heads} neither divides nor is divisible "
                                 f"by world_size {ws}")
            for p in ("q_proj", "k_proj", "v_proj"):
                plan[f"{path}.{p}"] = "colwise"
            plan[f"{path}.o_proj"] = "rowwise"
        elif isinstance(mod, EmuMLP):
            _split(mod.intermediate_size, ws, "intermediate_size")
            plan[f"{path}.gate_proj"] = "rowwise_split_input" if fault == "shard_gate_projection" else "colwise"
            plan[f"{path}.up_proj"] = "colwise"
            plan[f"{path}.down_proj"] = "rowwise"
    model._emu_sharding = {"world_size": ws, "plan": plan,
                           "allreduce_strategy": str(opts.get("allreduce_strategy") or "NCCL")}
    return len(plan)


def _attn_shards(attn: EmuAttention, name: str, mod, ws: int, mode: str) -> ShardedLinear:
    D = attn.head_dim
    hl = attn.num_heads // ws
    groups = attn.num_heads // attn.num_kv_heads
    shards = []
    for r in range(ws):
        if name == "q_proj":
            shards.append(slice_linear(mod, rows=slice(r * hl * D, (r + 1) * hl * D)))
        elif name in ("k_proj", "v_proj"):
            if attn.num_kv_heads % ws == 0:
                kl = attn.num_kv_heads // ws
                first = r * kl
            else:  # fewer kv heads than ranks: replicate the kv head this rank's q heads use
                kl = 1
                first = (r * hl) // groups
            shards.append(slice_linear(mod, rows=slice(first * D, (first + kl) * D)))
        else:  # o_proj, row-parallel over this rank's heads
            shards.append(slice_linear(mod, cols=slice(r * hl * D, (r + 1) * hl * D), keep_bias=(r == 0)))
    return ShardedLinear(shards, mode)


def _mlp_shards(mlp: EmuMLP, name: str, mod, ws: int, mode: str) -> ShardedLinear:
    il = mlp.intermediate_size // ws
    hl = mlp.hidden_size // ws
    shards, in_slices = [], None
    for r in range(ws):
        inter = slice(r * il, (r + 1) * il)
        if mode == "colwise":
            shards.append(slice_linear(mod, rows=inter))
        elif mode == "rowwise":
            shards.append(slice_linear(mod, cols=inter, keep_bias=(r == 0)))
        else:  # rowwise_split_input: the rank's intermediate slice computed from its hidden slice
            shards.append(slice_linear(mod, rows=inter, cols=slice(r * hl, (r + 1) * hl), keep_bias=(r == 0)))
    if mode == "rowwise_split_input":
        in_slices = [(r * hl, (r + 1) * hl) for r in range(ws)]
    return ShardedLinear(shards, mode, in_slices)


def sharding_transform_executor(model, opts: dict, ctx: dict) -> int:
    """Apply the plan detect_sharding recorded (nothing to do without one)."""
    info = getattr(model, "_emu_sharding", None)
    if not info or not info.get("plan"):
        return 0
    ws = info["world_size"]
    fault = opts.get("fault")
    n = 0
    for path, mod in list(model.named_modules()):
        if isinstance(mod, EmuAttention):
            for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
                mode = info["plan"].get(f"{path}.{name}")
                if mode and not isinstance(getattr(mod, name), ShardedLinear):
                    setattr(mod, name, _attn_shards(mod, name, getattr(mod, name), ws, mode))
                    n += 1
            mod.allreduce_strategy = info["allreduce_strategy"]
            if fault == "head_reshape_stride":
                mod.head_stride_bug = True
            if fault == "double_allreduce":
                mod.extra_all_reduce = True
        elif isinstance(mod, EmuMLP):
            for name in ("gate_proj", "up_proj", "down_proj"):
                mode = info["plan"].get(f"{path}.{name}")
                if mode and not isinstance(getattr(mod, name), ShardedLinear):
                    setattr(mod, name, _mlp_shards(mod, name, getattr(mod, name), ws, mode))
                    n += 1
            mod.allreduce_strategy = info["allreduce_strategy"]
            if fault == "double_allreduce":
                mod.extra_all_reduce = True
    return n


def fuse_allreduce_residual_rmsnorm(model, opts: dict, ctx: dict) -> int:
    """all-reduce(o_proj partials) + residual + post_attention_layernorm -> one fused op.
    Only matches where a row-parallel o_proj exists (world_size > 1 and sharding applied)."""
    fault = opts.get("fault")
    n = 0
    for layer in model.modules():
        if not isinstance(layer, EmuDecoderLayer) or layer.post_attn_fused is not None:
            continue
        attn = layer.self_attn
        if not isinstance(getattr(attn, "o_proj", None), ShardedLinear):
            continue
        fused = FusedAllReduceAddRMSNorm(attn.allreduce_strategy)
        fused.low_precision = fault == "lowprecision_allreduce"
        fused.extra_reduce = fault == "double_allreduce"
        attn.defer_allreduce = True
        layer.post_attn_fused = fused
        n += 1
    return n
