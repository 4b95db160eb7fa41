"""Cross-engine numeric noise, the model side: where it enters and how it is drawn (settings and
their meaning: noise.py).

``install_engine_noise(model, layers, settings, signature)`` puts forward hooks on an emulated Llama:

* ``model.model`` (the LlamaModel), before: the prefix keys of this call's tokens; after: the last
  key of every row is carried on the returned KV-cache object for the next decode step;
* every decoder layer, after: the band, ``h + strength * BAND * rms(h) * z`` (``rms`` over the
  hidden features of each token);
* ``model.lm_head``, before: the tail, ``h + strength * TAIL * rms(h) * z`` on the positions whose
  key falls in the ``TAIL_SHARE`` of the hash range (the kept positions only: ``logits_to_keep``).

Deterministic per input, never a global RNG stream: every value is a counter-based hash of the
content. Per token ``g = mix32(mix32(token ^ s1) + position * K)`` with the *real* position id the
caller passes (not the padded index); the token's prefix key is the running sum of ``g`` over the
valid (attention-mask) tokens up to it, mod 2^32, continued from the key carried on the cache. The
same prompt therefore gets the same noise alone, in a batch, at any batch position, behind any left
padding, and at every decode step (an incremental decode sees the keys a full forward sees). Per site
(layer, or the head) and stream, ``mix32(mix32(key ^ salt) ^ C_j)`` for every group of four
features gives 32 bits whose four bytes index a table of 256 standard-normal quantiles
(inverse-CDF sampling); the two streams are ``z_engine`` (seed and site) and ``z_config`` (also the
config's kernel signature), combined with weights sqrt(shared), sqrt(1 - shared) pre-multiplied
into their tables. Integer ops and gathers only, no transcendental function (whose vectorised and
scalar code paths could differ in the last bit). The table is antisymmetric (mean exactly 0) with
mean square exactly 1, so the noise is unbiased.

``mix32`` is the 32-bit "lowbias32" finaliser (Chris Wellons' hash-prospector constants 0x21f0aaad,
0x735a2d97), on int64 tensors holding 32-bit values: both constants are below 2^31, so no product
overflows. Cost on the demo (scripts/bench_emulator.py --timing, configs/emulator/FAULTS.md):
a few per cent of an evaluation.
"""
from __future__ import annotations

import math

import torch

from harness.backends.emulator.noise import BAND, TABLE_BITS, TAIL, TAIL_SHARE, NoiseSettings

M32 = 0xFFFFFFFF
_C1, _C2 = 0x21F0AAAD, 0x735A2D97  # lowbias32 multipliers, both < 2^31
_K_POS = 0x61C88647  # 2^32 - 0x9E3779B9 (golden ratio): spreads positions
PER_HASH = 32 // TABLE_BITS  # table indices per 32-bit hash
TAIL_SITE = 1 << 16  # the head's site id in the salts (layers are 0, 1, ...)
CACHE_ATTR = "_emu_engine_noise_key"


def mix32_(x: torch.Tensor, tmp: torch.Tensor | None = None) -> torch.Tensor:
    """lowbias32, in place, on an int64 tensor of values in [0, 2^32); ``tmp`` (same shape) is scratch."""
    tmp = torch.empty_like(x) if tmp is None else tmp
    for shift, mult in ((16, _C1), (15, _C2)):
        x.bitwise_xor_(torch.bitwise_right_shift(x, shift, out=tmp))
        x.mul_(mult).bitwise_and_(M32)
    return x.bitwise_xor_(torch.bitwise_right_shift(x, 15, out=tmp))


def mix32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 of ``x & 0xFFFFFFFF`` (a new tensor)."""
    return mix32_(x & M32)


def salt(*parts: int) -> int:
    """A 32-bit constant from small integers (the same mixer on Python ints)."""
    h = 0x3C6EF372
    for p in parts:
        h = (h ^ (int(p) & M32)) & M32
        for shift, mult in ((16, _C1), (15, _C2)):
            h ^= h >> shift
            h = (h * mult) & M32
        h ^= h >> 15
    return h


def gaussian_table(bits: int = TABLE_BITS) -> torch.Tensor:
    """2^bits standard-normal quantiles at (i + 0.5) / 2^bits, antisymmetric (mean exactly 0) and
    scaled to mean square exactly 1; float32."""
    n = 1 << bits
    p = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    q = math.sqrt(2.0) * torch.special.erfinv(2.0 * p - 1.0)
    q = (q - q.flip(0)) / 2.0
    return (q / q.pow(2).mean().sqrt()).to(torch.float32)


def prefix_keys(input_ids, position_ids, valid, prev, seed: int):
    """(keys (B, S), last (B,)): per token the running hash of the valid (token, position) pairs up
    to it, continued from ``prev`` (B,): the last key of the previous call on this cache, or 0."""
    g = mix32(mix32(input_ids.to(torch.int64) ^ salt(seed, 1)) + (position_ids.to(torch.int64) & M32) * _K_POS)
    g = torch.where(valid, g, torch.zeros_like(g))
    keys = (g.cumsum(dim=-1) + prev.view(-1, 1)) & M32  # < 2^63 for any sequence below 2^31 tokens
    return keys, keys[:, -1]


def _forward_inputs(args, kwargs):
    """(input_ids, cache, position_ids, attention_mask) of a LlamaModel call."""
    ids = kwargs.get("input_ids", args[0] if args else None)
    if ids is None:
        raise RuntimeError("engine_noise derives its noise from the token ids; call the model with input_ids")
    cache = kwargs.get("cache", kwargs.get("past_key_values"))
    return ids, cache, kwargs.get("position_ids"), kwargs.get("attention_mask")


class EngineNoise:
    """The hooks' state: settings, kernel signature, the two streams' tables, this call's keys."""

    def __init__(self, settings: NoiseSettings, signature: int, hidden: int):
        if hidden % PER_HASH:
            raise ValueError(f"engine_noise needs a hidden size divisible by {PER_HASH}, got {hidden}")
        self.settings = settings
        self.signature = signature
        table = gaussian_table()
        sh = settings.shared
        self.streams = [(tag, table * math.sqrt(w)) for tag, w in ((3, sh), (4, 1.0 - sh)) if w > 0.0]
        self.feat = mix32(torch.arange(hidden // PER_HASH, dtype=torch.int64) + salt(settings.seed, 2))
        self.keys: torch.Tensor | None = None  # (B, S) prefix keys of the current forward
        self.last: torch.Tensor | None = None
        self.handles: list = []

    def z(self, keys: torch.Tensor, site: int) -> torch.Tensor:
        """(B, S, hidden): sqrt(shared) * z_engine + sqrt(1 - shared) * z_config at one site."""
        out = None
        for tag, table in self.streams:
            parts = (self.settings.seed, tag, site) + ((self.signature,) if tag == 4 else ())
            bits = mix32(keys ^ salt(*parts)).unsqueeze(-1) ^ self.feat
            mix32_(bits)
            idx = bits.view(torch.uint8).view(*bits.shape, 8)[..., :PER_HASH]  # the 4 low bytes (little-endian)
            z = torch.index_select(table, 0, idx.reshape(-1).to(torch.int32)).view(*keys.shape, -1)
            out = z if out is None else out.add_(z)
        return out

    def add(self, h: torch.Tensor, keys: torch.Tensor, rel, site: int) -> torch.Tensor:
        """h + rel * rms(h) * z; ``rel`` a float or (B, S, 1)."""
        rms = h.float().pow(2).mean(-1, keepdim=True).sqrt_()
        return h + (self.z(keys, site).mul_(rms * rel)).to(h.dtype)

    def band(self, h: torch.Tensor, layer: int) -> torch.Tensor:
        return self.add(h, self.keys, self.settings.strength * BAND, layer)

    def tail(self, h: torch.Tensor) -> torch.Tensor:
        keys = self.keys[:, -h.shape[1]:]
        hit = mix32(keys ^ salt(self.settings.seed, 5)) < int(TAIL_SHARE * (M32 + 1))
        return self.add(h, keys, hit.unsqueeze(-1).float() * (self.settings.strength * TAIL), TAIL_SITE)

    # -- hooks ------------------------------------------------------------------------------
    def before_model(self, module, args, kwargs) -> None:
        ids, cache, pos, mask = _forward_inputs(args, kwargs)
        B, S = ids.shape
        prev = getattr(cache, CACHE_ATTR, None) if cache is not None else None
        if prev is None or prev.shape[0] != B:
            prev = torch.zeros(B, dtype=torch.int64, device=ids.device)
        if pos is None:  # what LlamaModel.forward does without position ids
            past = cache.get_seq_length() if cache is not None else 0
            pos = (torch.arange(S, device=ids.device) + past).unsqueeze(0)
        valid = mask[:, -S:].bool() if isinstance(mask, torch.Tensor) and mask.dim() == 2 \
            else torch.ones(B, S, dtype=torch.bool, device=ids.device)
        self.keys, self.last = prefix_keys(ids, pos.expand(B, S), valid, prev, self.settings.seed)

    def after_model(self, module, args, kwargs, output):
        cache = getattr(output, "cache", None)
        if cache is None:
            cache = getattr(output, "past_key_values", None)
        if cache is None:
            cache = _forward_inputs(args, kwargs)[1]
        if cache is not None:
            setattr(cache, CACHE_ATTR, self.last)
        return output

    def install(self, model, layers) -> "EngineNoise":
        base = model.model
        self.handles.append(base.register_forward_pre_hook(self.before_model, with_kwargs=True))
        self.handles.append(base.register_forward_hook(self.after_model, with_kwargs=True))
        for i, layer in enumerate(layers):
            self.handles.append(layer.register_forward_hook(lambda mod, args, out, i=i: self.band(out, i)))
        self.handles.append(model.lm_head.register_forward_pre_hook(
            lambda mod, args: (self.tail(args[0]),) + tuple(args[1:])))
        return self

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


def install_engine_noise(model, layers, settings: NoiseSettings, signature: int) -> EngineNoise | None:
    """Hook the noise into an emulated Llama; None (nothing installed) when the strength is 0."""
    if not settings.enabled:
        return None
    return EngineNoise(settings, signature, int(model.config.hidden_size)).install(model, layers)
