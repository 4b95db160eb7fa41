"""The emulated model: a transformers Llama whose attention, MLP and decoder layers expose the
points AD's graph transforms rewrite (projections, RoPE, attention kernel, KV cache, norms,
all-reduce).

``emulate(model)`` swaps the classes of the Llama submodules in place (weights untouched) for the
subclasses below. Their forward passes do exactly what transformers' ``modeling_llama`` does
(transformers 5.x ``LlamaAttention.forward``, ``LlamaMLP.forward``, ``LlamaDecoderLayer.forward``)
until a transform changes one of the documented attributes, so the untransformed emulated model
is bit-identical to the ``hf`` backend (the cross-engine noise, ``engine_noise``, is added on top by
forward hooks: noise_hooks.py).

Tensor parallelism is emulated in-process: a sharded projection is a ``ShardedLinear`` that
returns one tensor per rank, every rank runs its own heads / MLP slice, and the row-parallel
partial results are combined by ``all_reduce`` (a sum), as ``torch_dist_all_reduce`` does in AD.
"""
from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.llama import modeling_llama as hf_llama

FP8_MAX = 448.0  # torch.finfo(torch.float8_e4m3fn).max; AD custom_ops/quantization/quant.py FP8_MAX


# ----------------------------------------------------------------------------------------------
# collectives
# ----------------------------------------------------------------------------------------------
def all_reduce(partials: list[torch.Tensor], strategy: str = "NCCL", low_precision: bool = False) -> torch.Tensor:
    """Sum of the per-rank tensors (every rank gets the same result).

    ``low_precision`` emulates TRT-LLM's ``LOWPRECISION`` all-reduce strategy, which exchanges
    the partials quantized to FP8 (here: e4m3 with one dynamic scale per token) and sums them in
    float32.
    """
    if low_precision:
        partials = [_fp8_per_token(p) for p in partials]
    out = partials[0]
    for p in partials[1:]:
        out = out + p
    return out


def _fp8_per_token(x: torch.Tensor) -> torch.Tensor:
    xf = x.to(torch.float32)
    scale = (xf.abs().amax(dim=-1, keepdim=True) / FP8_MAX).clamp(min=1e-12)
    return ((xf / scale).to(torch.float8_e4m3fn).to(torch.float32) * scale).to(x.dtype)


def as_list(x):
    return x if isinstance(x, list) else [x]


# ----------------------------------------------------------------------------------------------
# projections
# ----------------------------------------------------------------------------------------------
class ShardedLinear(nn.Module):
    """One projection split over ``world_size`` emulated ranks.

    mode ``colwise``: every rank sees the full input and owns a slice of the output features;
    forward(x) -> [y_rank]. mode ``rowwise``: rank r owns a slice of the input features and gets
    its own input slice; forward([x_rank]) -> [partial_rank] (to be all-reduced).
    mode ``rowwise_split_input``: like rowwise, but the input is one full tensor that every rank
    slices itself (``in_slices``) -- what a projection sharded along the wrong dimension does.
    """

    def __init__(self, shards: list[nn.Module], mode: str, in_slices: list[tuple[int, int]] | None = None):
        super().__init__()
        self.shards = nn.ModuleList(shards)
        self.mode = mode
        self.in_slices = in_slices

    @property
    def world_size(self) -> int:
        return len(self.shards)

    def forward(self, x):
        if self.mode == "colwise":
            return [s(x) for s in self.shards]
        if self.mode == "rowwise":
            xs = as_list(x)
            if len(xs) != len(self.shards):
                raise RuntimeError(f"row-parallel projection got {len(xs)} inputs for {len(self.shards)} ranks")
            return [s(xi) for s, xi in zip(self.shards, xs)]
        if self.mode == "rowwise_split_input":
            return [s(x[..., a:b]) for s, (a, b) in zip(self.shards, self.in_slices)]
        raise RuntimeError(f"unknown sharding mode {self.mode!r}")

    def extra_repr(self) -> str:
        return f"mode={self.mode}, world_size={self.world_size}"


def slice_linear(mod: nn.Module, rows: slice | None = None, cols: slice | None = None, keep_bias: bool = True) -> nn.Module:
    """A new projection holding ``weight[rows, cols]`` (and the matching bias slice)."""
    if hasattr(mod, "sliced"):
        return mod.sliced(rows, cols, keep_bias)
    if type(mod) is not nn.Linear:
        raise TypeError(f"cannot shard a {type(mod).__name__}; only nn.Linear and the emulator's FP8 linears")
    w = mod.weight.detach()
    w = w[rows if rows is not None else slice(None), cols if cols is not None else slice(None)]
    has_bias = mod.bias is not None and keep_bias
    new = nn.Linear(w.shape[1], w.shape[0], bias=has_bias, dtype=w.dtype, device=w.device)
    with torch.no_grad():
        new.weight.copy_(w)
        if has_bias:
            new.bias.copy_(mod.bias.detach()[rows if rows is not None else slice(None)])
    new.requires_grad_(False)
    return new


def round_mantissa(x: torch.Tensor, bits: float) -> torch.Tensor:
    """Round to a float grid with ``bits`` mantissa bits (bf16 has 7, fp8 e4m3 3); ``bits`` may be
    fractional (grid step 2**(exponent - bits)). Deterministic and element-wise."""
    xf = x.to(torch.float32)
    exp = torch.floor(torch.log2(xf.abs().clamp(min=1e-30)))
    step = torch.exp2(exp - float(bits))
    return (torch.round(xf / step) * step).to(x.dtype)


# ----------------------------------------------------------------------------------------------
# RoPE
# ----------------------------------------------------------------------------------------------
class CachedRotaryEmbedding(nn.Module):
    """``optimize_rope``: a precomputed cos/sin table indexed by position (flashinfer-style
    ``cos_sin_cache``). Same call convention and, for the default rope type, the same values as
    ``LlamaRotaryEmbedding.forward`` (identical float ops on identical inputs)."""

    def __init__(self, rotary: nn.Module, max_positions: int, position_bits: float | None = None):
        super().__init__()
        inv_freq = rotary.inv_freq.detach().float()
        pos = torch.arange(max_positions, dtype=torch.float32)
        if position_bits is not None:  # the low_precision_rope fault: positions held in a narrow float
            pos = round_mantissa(pos, position_bits)
        freqs = pos[:, None] * inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        scaling = float(getattr(rotary, "attention_scaling", 1.0))
        self.register_buffer("cos_cache", emb.cos() * scaling, persistent=False)
        self.register_buffer("sin_cache", emb.sin() * scaling, persistent=False)

    def forward(self, x, position_ids):
        cos = self.cos_cache[position_ids]
        sin = self.sin_cache[position_ids]
        return cos.to(dtype=x.dtype), sin.to(dtype=x.dtype)


# ----------------------------------------------------------------------------------------------
# norms and fused elementwise ops
# ----------------------------------------------------------------------------------------------
def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """LlamaRMSNorm.forward, op for op."""
    input_dtype = x.dtype
    h = x.to(torch.float32)
    variance = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(variance + eps)
    return weight * h.to(input_dtype)


class FusedRMSNorm(nn.Module):
    """``fuse_rmsnorm``: the fused RMSNorm kernel (AD ``flashinfer_rms_norm``); same math.

    ``eps`` is read from the model config by the transform; the ``hardcoded_eps`` fault makes the
    kernel wrapper use its own constant instead (docs/method.md Phase 4b)."""

    def __init__(self, weight: nn.Parameter, eps: float):
        super().__init__()
        self.weight = weight
        self.variance_epsilon = eps
        self.out_mantissa_bits = None  # the low_precision_norm fault: output rounded to this many bits

    def forward(self, x):
        out = rms_norm(x, self.weight, self.variance_epsilon)
        if self.out_mantissa_bits is not None:
            out = round_mantissa(out, self.out_mantissa_bits)
        return out

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, eps={self.variance_epsilon}"


class FusedAddRMSNorm(nn.Module):
    """``fuse_add_rms_norm``: an RMSNorm whose input is a residual add, computed by the fused
    add+norm kernel. The add stays where it is (same float ops), the wrapped norm does the rest.

    ``weight_again`` is the planted interaction bug: when the wrapped norm is already the fused
    (weight-carrying) flashinfer op from ``fuse_rmsnorm``, the rewrite still appends the
    ``* weight`` of the torch pattern it matched, so the norm weight is applied twice."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.norm = norm
        self.weight_again = 0  # extra applications of the norm weight (the fault; 0 = correct)

    @property
    def weight(self):
        return self.norm.weight

    def forward(self, x):
        out = self.norm(x)
        if self.weight_again and isinstance(self.norm, FusedRMSNorm):
            out = out * self.norm.weight ** self.weight_again
        return out


class FusedAllReduceAddRMSNorm(nn.Module):
    """``fuse_allreduce_residual_rmsnorm``: all-reduce of the row-parallel partials + residual add
    + RMSNorm in one op (TRT-LLM ``fused_allreduce_residual_rmsnorm``)."""

    def __init__(self, strategy: str = "NCCL"):
        super().__init__()
        self.strategy = strategy
        self.low_precision = False
        self.extra_reduce = False

    def forward(self, residual, partials, norm: nn.Module):
        parts = as_list(partials)
        red = all_reduce(parts, self.strategy, self.low_precision)
        if self.extra_reduce:
            red = all_reduce([red] * len(parts), self.strategy)
        h = residual + red
        return h, norm(h)


class FusedSiluMul(nn.Module):
    """``fuse_silu_mul``: silu(gate) * up in one kernel (AD ``flashinfer silu_and_mul``).

    Eager calls run the reference implementation. When the graph is compiled (``compile_model``
    with any backend but torch-simple calls ``lower_for_compile``, and under ``torch.compile``)
    the op's lowering runs instead -- where the compiled-only fault lives."""

    def __init__(self):
        super().__init__()
        self.lowered = False
        self.lowering_bug = False

    def lower_for_compile(self) -> None:
        self.lowered = True

    def forward(self, gate, up):
        if self.lowered or torch.compiler.is_compiling():
            if self.lowering_bug:  # the lowering reads the [gate | up] halves in the wrong order
                return F.silu(up) * gate
            return F.silu(gate) * up
        return F.silu(gate) * up


# ----------------------------------------------------------------------------------------------
# attention
# ----------------------------------------------------------------------------------------------
def _heads(x: torch.Tensor, n_heads: int, head_dim: int, wrong_stride: bool) -> torch.Tensor:
    """(B, S, n*D) -> (B, n, S, D). ``wrong_stride``: the reshape treats the feature axis as
    (D, n) instead of (n, D) -- a view captured with a concrete head count that no longer
    matches the layout after a TP split (docs/method.md Phase 4c)."""
    B, S = x.shape[:2]
    if wrong_stride and n_heads > 1:
        return x.view(B, S, head_dim, n_heads).transpose(-1, -2).transpose(1, 2)
    return x.view(B, S, n_heads, head_dim).transpose(1, 2)


class EmuAttention(hf_llama.LlamaAttention):
    """LlamaAttention with the knobs AD's attention transforms touch.

    Attributes (defaults reproduce transformers exactly):
      rope_applications   how many times RoPE is applied to q/k (1)
      scaling             softmax scale passed to the attention kernel (head_dim ** -0.5)
      prefill_nan         write NaN into the key of the last prompt position on prefill
      kv_garbage          None, or a (num_kv_heads * head_dim) vector every V-cache read returns
      head_stride_bug     wrong head reshape on per-rank q/k/v when a rank holds > 1 head
      defer_allreduce     return the row-parallel partials (a fused all-reduce follows)
      extra_all_reduce    all-reduce the already reduced output once more
      allreduce_strategy  recorded strategy name
    """

    def emu_init(self) -> None:
        cfg = self.config
        self.num_heads = cfg.num_attention_heads
        self.num_kv_heads = cfg.num_key_value_heads
        self.rope_applications = 1
        self.prefill_nan = False
        self.kv_garbage = None
        self.head_stride_bug = False
        self.defer_allreduce = False
        self.extra_all_reduce = False
        self.allreduce_strategy = "NCCL"

    def forward(self, hidden_states, position_embeddings=None, attention_mask=None, cache=None,
                position_ids=None, **kwargs):
        B, S = hidden_states.shape[:2]
        D = self.head_dim
        cos, sin = position_embeddings
        q_parts = as_list(self.q_proj(hidden_states))
        k_parts = as_list(self.k_proj(hidden_states))
        v_parts = as_list(self.v_proj(hidden_states))
        n = len(q_parts)
        qs, ks, vs = [], [], []
        for q, k, v in zip(q_parts, k_parts, v_parts):
            q = _heads(q, q.shape[-1] // D, D, self.head_stride_bug)
            k = _heads(k, k.shape[-1] // D, D, self.head_stride_bug)
            v = _heads(v, v.shape[-1] // D, D, self.head_stride_bug)
            for _ in range(self.rope_applications):
                q, k = hf_llama.apply_rotary_pos_emb(q, k, cos, sin)
            qs.append(q)
            ks.append(k)
            vs.append(v)
        key = ks[0] if n == 1 else torch.cat(ks, dim=1)
        value = vs[0] if n == 1 else torch.cat(vs, dim=1)
        if self.prefill_nan and S > 1:
            key = key.clone()
            key[:, :, -1, :] = float("nan")
        if cache is not None:
            key, value = cache.update(key, value, self.layer_idx)
        if self.kv_garbage is not None:
            g = self.kv_garbage.to(value.dtype).view(1, -1, 1, D)
            value = g.expand(value.shape[0], g.shape[1], value.shape[2], D)
            if value.shape[1] != key.shape[1]:  # kv heads replicated over ranks: [kv0, kv0, kv1, kv1]
                value = value.repeat_interleave(key.shape[1] // value.shape[1], dim=1)
        interface = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation,
                                                          hf_llama.eager_attention_forward)
        kv_local = key.shape[1] // n
        outs = []
        for r in range(n):
            q = qs[r]
            kr = key[:, r * kv_local:(r + 1) * kv_local]
            vr = value[:, r * kv_local:(r + 1) * kv_local]
            mod = self if n == 1 else types.SimpleNamespace(
                num_key_value_groups=q.shape[1] // kv_local, is_causal=True, training=False)
            o, _ = interface(mod, q, kr, vr, attention_mask, dropout=0.0, scaling=self.scaling)
            outs.append(o.reshape(B, S, -1).contiguous())
        if n == 1 and not isinstance(self.o_proj, ShardedLinear):
            return self.o_proj(outs[0]), None
        partials = as_list(self.o_proj(outs if n > 1 else outs[0]))
        if self.defer_allreduce:
            return partials, None
        out = all_reduce(partials, self.allreduce_strategy)
        if self.extra_all_reduce:
            out = all_reduce([out] * len(partials), self.allreduce_strategy)
        return out, None


class EmuMLP(hf_llama.LlamaMLP):
    """LlamaMLP; ``silu_mul`` (a FusedSiluMul) replaces ``act_fn(gate) * up`` when fused;
    sharded projections run per rank and the down projection's partials are all-reduced."""

    def emu_init(self) -> None:
        self.silu_mul = None
        self.extra_all_reduce = False
        self.allreduce_strategy = "NCCL"

    def _act_mul(self, g, u):
        if self.silu_mul is not None:
            return self.silu_mul(g, u)
        return self.act_fn(g) * u

    def forward(self, x):
        if not any(isinstance(m, ShardedLinear) for m in (self.gate_proj, self.up_proj, self.down_proj)):
            return self.down_proj(self._act_mul(self.gate_proj(x), self.up_proj(x)))
        gs, us = as_list(self.gate_proj(x)), as_list(self.up_proj(x))
        acts = [self._act_mul(g, u) for g, u in zip(gs, us)]
        partials = as_list(self.down_proj(acts if len(acts) > 1 else acts[0]))
        out = all_reduce(partials, self.allreduce_strategy)
        if self.extra_all_reduce:
            out = all_reduce([out] * len(partials), self.allreduce_strategy)
        return out


class EmuDecoderLayer(hf_llama.LlamaDecoderLayer):
    """LlamaDecoderLayer; ``post_attn_fused`` (a FusedAllReduceAddRMSNorm)
    replaces ``residual + attn`` followed by ``post_attention_layernorm`` when a fusion ran."""

    def emu_init(self) -> None:
        self.post_attn_fused = None

    def forward(self, hidden_states, attention_mask=None, position_ids=None, cache=None, use_cache=False,
                position_embeddings=None, **kwargs):
        if cache is None:
            cache = kwargs.pop("past_key_values", None)
        residual = hidden_states
        h = self.input_layernorm(hidden_states)
        attn, _ = self.self_attn(hidden_states=h, attention_mask=attention_mask, position_ids=position_ids,
                                 cache=cache, position_embeddings=position_embeddings)
        if self.post_attn_fused is not None:
            hidden_states, h = self.post_attn_fused(residual, attn, self.post_attention_layernorm)
        else:
            if isinstance(attn, list):
                attn = all_reduce(attn)
            hidden_states = residual + attn
            h = self.post_attention_layernorm(hidden_states)
        h = self.mlp(h)
        return hidden_states + h


def emulate(model) -> int:
    """Swap the Llama submodules of ``model`` for the emulated classes in place; returns the
    number of decoder layers. Raises TypeError for a model that is not Llama-family."""
    n = 0
    for mod in model.modules():
        if type(mod) is hf_llama.LlamaAttention:
            mod.__class__ = EmuAttention
            mod.emu_init()
        elif type(mod) is hf_llama.LlamaMLP:
            mod.__class__ = EmuMLP
            mod.emu_init()
        elif type(mod) is hf_llama.LlamaDecoderLayer:
            mod.__class__ = EmuDecoderLayer
            mod.emu_init()
            n += 1
    if n == 0:
        raise TypeError(f"{type(model).__name__} has no LlamaDecoderLayer; the emulator runs Llama-family models")
    return n


def decoder_layers(model) -> list[EmuDecoderLayer]:
    return [m for m in model.modules() if isinstance(m, EmuDecoderLayer)]


def replace_module(root: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, name, new)
