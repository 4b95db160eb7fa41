"""FP8 quantization: the fake-quant linear, the "kernel" linear and their transforms.

What AD does (NVIDIA/TensorRT-LLM):

* ``quantize_fp8_linear_from_config`` (``transform/library/quantization.py``,
  ``FP8LinearQuantizationFromConfig``): acts only when ``factory.get_quant_config()`` (the
  checkpoint's ``hf_quant_config.json`` "quantization" section) has ``quant_algo`` FP8 and no
  ``weight_block_size``; every linear not in ``exclude_modules`` becomes
  ``torch_fake_quant_fp8_linear`` with an ``input_scale``/``weight_scale`` buffer (default 1.0);
  its load hook turns a non-FP8 weight into ``(w / fp8_scale(w)).to(float8_e4m3fn)`` with
  ``fp8_scale(w) = amax(|w|) / FP8_MAX`` and stores the scale.
* ``fuse_fp8_linear`` (``transform/library/fuse_quant.py``) swaps the fake-quant op for the FP8
  GEMM kernel, which also quantizes the activations.

The emulator, as the project specifies: the fake-quant linear is weight-only (FP8 weights with a
per-tensor scale, activations and matmul in float32), so on a checkpoint whose weights are already
FP8-representable (``demo_model_fp8``) it reproduces the checkpoint exactly; the kernel linear
also quantizes activations dynamically (one scale per token, so a sample's numbers never depend
on the other prompts in its batch) and multiplies the FP8 values with float32 accumulation.
"""
from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from harness.backends.emulator.modules import FP8_MAX, replace_module

FP8 = torch.float8_e4m3fn


# ----------------------------------------------------------------------------------------------
# checkpoint quantization config
# ----------------------------------------------------------------------------------------------
def read_quant_config(model_dir: str | Path) -> dict | None:
    """The checkpoint's quantization section, as AD's factory reads it: ``hf_quant_config.json``
    ("quantization" key, ModelOpt layout) or ``config.json`` ``quantization_config``."""
    d = Path(model_dir)
    hq = d / "hf_quant_config.json"
    if hq.is_file():
        data = json.loads(hq.read_text())
        return dict(data.get("quantization") or {})
    cfg = d / "config.json"
    if cfg.is_file():
        q = json.loads(cfg.read_text()).get("quantization_config")
        if isinstance(q, dict):
            return dict(q)
    return None


def declares_fp8(qcfg: dict | None) -> bool:
    if not qcfg or qcfg.get("weight_block_size"):
        return False
    algo = str(qcfg.get("quant_algo") or "").upper()
    method = str(qcfg.get("quant_method") or "").upper()
    return algo == "FP8" or method == "FP8"


def fp8_scale(w: torch.Tensor) -> torch.Tensor:
    return (w.detach().abs().amax().float() / FP8_MAX).clamp(min=1e-12)


def _block_scales(w: torch.Tensor, block: int) -> torch.Tensor:
    """Full-size (expanded) per-block scales amax(block) / 448 for blocks of ``block`` x ``block``."""
    out_f, in_f = w.shape
    nbo, nbi = -(-out_f // block), -(-in_f // block)
    pad = torch.zeros(nbo * block, nbi * block, dtype=torch.float32)
    pad[:out_f, :in_f] = w.detach().float().abs()
    amax = pad.view(nbo, block, nbi, block).amax(dim=(1, 3))
    scales = (amax / FP8_MAX).clamp(min=1e-12)
    return scales.repeat_interleave(block, 0).repeat_interleave(block, 1)[:out_f, :in_f].contiguous()


def _misaligned(scales: torch.Tensor, block: int) -> torch.Tensor:
    """The scale grid shifted by one block along the output dimension: every block is
    dequantized with its neighbour's scale (the wrong-block-scale fault)."""
    return torch.roll(scales, shifts=block, dims=0).contiguous()


def _slice2(t: torch.Tensor, rows, cols) -> torch.Tensor:
    if t.dim() < 2:
        return t.clone()
    return t[rows if rows is not None else slice(None), cols if cols is not None else slice(None)].clone()


# ----------------------------------------------------------------------------------------------
# modules
# ----------------------------------------------------------------------------------------------
class FP8FakeQuantLinear(nn.Module):
    """``torch_fake_quant_fp8_linear`` (weight-only here): y = x @ (w_fp8 * weight_scale)^T + b.

    ``weight_scale`` is a scalar (per-tensor) or, for block-scaled weights, a full-size tensor."""

    def __init__(self, weight_fp8: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.register_buffer("weight", weight_fp8)
        self.register_buffer("weight_scale", weight_scale)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)
        self.out_features, self.in_features = weight_fp8.shape

    @classmethod
    def from_linear(cls, lin: nn.Linear) -> "FP8FakeQuantLinear":
        w = lin.weight.detach().float()
        s = fp8_scale(w)
        return cls((w / s).to(FP8), s, lin.bias)

    def dequantized_weight(self) -> torch.Tensor:
        return self.weight.to(torch.float32) * self.weight_scale

    def requantize_blocks(self, block: int, misalign: bool) -> None:
        """Block-wise FP8 with correct per-block quantization; ``misalign`` stores the scale grid
        shifted by one block, so dequantization uses the neighbouring block's scale."""
        w = self.dequantized_weight()
        s = _block_scales(w, block)
        self.weight = (w / s).to(FP8)
        self.weight_scale = _misaligned(s, block) if misalign else s

    def forward(self, x):
        return F.linear(x, self.dequantized_weight().to(x.dtype), self.bias)

    def sliced(self, rows, cols, keep_bias=True):
        bias = None
        if self.bias is not None and keep_bias:
            bias = self.bias.detach()[rows if rows is not None else slice(None)]
        return FP8FakeQuantLinear(_slice2(self.weight, rows, cols), _slice2(self.weight_scale, rows, cols), bias)

    def extra_repr(self) -> str:
        kind = "per-tensor" if self.weight_scale.dim() == 0 else "block"
        return f"in={self.in_features}, out={self.out_features}, fp8 e4m3 weights, {kind} scale"


class FP8Linear(nn.Module):
    """The FP8 GEMM "kernel": weights stored as packed bytes (uint8) reinterpreted as float8,
    activations quantized per token (dynamic), FP8 x FP8 products accumulated in float32, then
    the two scales applied. Attributes set by faults: ``dequant`` ("scale" | "none" | "inverse"),
    ``reinterpret`` ("view" | "to")."""

    def __init__(self, weight_u8: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.register_buffer("weight_u8", weight_u8)
        self.register_buffer("weight_scale", weight_scale)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)
        self.out_features, self.in_features = weight_u8.shape
        self.dequant = "scale"
        self.reinterpret = "view"

    @classmethod
    def from_fake(cls, fake: FP8FakeQuantLinear) -> "FP8Linear":
        return cls(fake.weight.view(torch.uint8).clone(), fake.weight_scale.clone(), fake.bias)

    def weight_fp8(self) -> torch.Tensor:
        if self.reinterpret == "to":  # the bug: numeric conversion of the byte values
            return self.weight_u8.to(FP8)
        return self.weight_u8.view(FP8)

    def requantize_blocks(self, block: int, misalign: bool) -> None:
        w = self.weight_fp8().to(torch.float32) * self.weight_scale
        s = _block_scales(w, block)
        self.weight_u8 = (w / s).to(FP8).view(torch.uint8)
        self.weight_scale = _misaligned(s, block) if misalign else s

    def kernel_weight(self) -> torch.Tensor:
        """The weight this kernel multiplies with, float32: its reading of the bytes (``reinterpret``)
        dequantized the way it applies the scale (``dequant``); for a per-tensor scale applied after the
        GEMM this is the same product."""
        return self._apply_scale(self.weight_fp8().to(torch.float32), self.weight_scale)

    def _apply_scale(self, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        if self.dequant == "none":
            return t
        if self.dequant == "inverse":
            return t / s
        return t * s

    def forward(self, x):
        xf = x.to(torch.float32)
        x_scale = (xf.abs().amax(dim=-1, keepdim=True) / FP8_MAX).clamp(min=1e-12)
        xq = (xf / x_scale).to(FP8).to(torch.float32)
        wq = self.weight_fp8().to(torch.float32)
        if self.weight_scale.dim() == 0:
            y = self._apply_scale(F.linear(xq, wq), self.weight_scale) * x_scale
        else:  # block-scaled weights: dequantize blocks, then the GEMM
            y = F.linear(xq, self._apply_scale(wq, self.weight_scale)) * x_scale
        y = y.to(x.dtype)
        if self.bias is not None:
            y = y + self.bias
        return y

    def sliced(self, rows, cols, keep_bias=True):
        bias = None
        if self.bias is not None and keep_bias:
            bias = self.bias.detach()[rows if rows is not None else slice(None)]
        new = FP8Linear(_slice2(self.weight_u8, rows, cols), _slice2(self.weight_scale, rows, cols), bias)
        new.dequant, new.reinterpret = self.dequant, self.reinterpret
        return new

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, fp8 w8a8 (dynamic per-token activations)"


# ----------------------------------------------------------------------------------------------
# transforms
# ----------------------------------------------------------------------------------------------
def _excluded(path: str, patterns) -> bool:
    return any(fnmatch.fnmatch(path, p) or path == p or path.endswith("." + p) for p in patterns or [])


def quantize_fp8_linear_from_config(model, opts: dict, ctx: dict) -> int:
    """nn.Linear -> FP8FakeQuantLinear on checkpoints that declare FP8; else no match.

    Faults here corrupt the *data* the load hook stores (so the kernel path inherits them):
    missing_dequant_scale leaves weight_scale at its default 1.0, inverted_scale stores 1/scale,
    wrong_block_scale stores block scales taken from the neighbouring block."""
    qcfg = ctx.get("quant_config")
    if not declares_fp8(qcfg):
        return 0
    excluded = qcfg.get("exclude_modules") or ["lm_head"]
    fault = opts.get("fault")
    n = 0
    for path, mod in list(model.named_modules()):
        if type(mod) is not nn.Linear or _excluded(path, excluded):
            continue
        new = FP8FakeQuantLinear.from_linear(mod)
        if fault == "missing_dequant_scale":
            new.weight_scale = torch.ones_like(new.weight_scale)
        elif fault == "inverted_scale":
            new.weight_scale = 1.0 / new.weight_scale
        elif fault == "wrong_block_scale":
            new.requantize_blocks(int(opts.get("fault_strength") or 10), misalign=True)
        replace_module(model, path, new)
        n += 1
    return n


def fuse_fp8_linear(model, opts: dict, ctx: dict) -> int:
    """FP8FakeQuantLinear -> FP8Linear (the kernel path). Faults here are kernel bugs: they
    disappear when fuse_fp8_linear is disabled (fake-quant mode, docs/method.md Phase 4a step 3)."""
    fault = opts.get("fault")
    n = 0
    for path, mod in list(model.named_modules()):
        if not isinstance(mod, FP8FakeQuantLinear):
            continue
        new = FP8Linear.from_fake(mod)
        if fault == "missing_dequant_scale":
            new.dequant = "none"
        elif fault == "inverted_scale":
            new.dequant = "inverse"
        elif fault == "to_instead_of_view":
            new.reinterpret = "to"
        elif fault == "wrong_block_scale":
            new.requantize_blocks(int(opts.get("fault_strength") or 10), misalign=True)
        replace_module(model, path, new)
        n += 1
    return n


def count_quantized(model, cls_names=("FP8Linear", "FP8FakeQuantLinear")) -> int:
    return sum(type(m).__name__ in cls_names for m in model.modules())
