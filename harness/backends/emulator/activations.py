"""The emulator's activation capture (``EmulatorBackend.activations``): the generic capture of
harness/backends/activations.py plus what the emulated AD model does differently from the reference.

* Tensor parallelism (sharding.py, modules.py ``ShardedLinear``): a sharded projection returns one
  tensor per rank. Column-parallel ranks (``colwise``, and ``rowwise_split_input``, whose ranks each
  own a slice of the output features) are concatenated along the features; row-parallel partials
  (``rowwise``, and an attention that defers its all-reduce to the fused all-reduce + norm) are summed,
  as the all-reduce does. A row-parallel projection fed the reference's input gets it split into the
  ranks' input slices, in rank order.
* Compile backends (compile.py): the compiled forward wrapper is bypassed and the model runs eagerly.
  The lowering stays in place (``lower_for_compile`` already switched the fused ops), so a
  compiled-only fault still shows; the cudagraph bucketing only pads the batch with rows that never
  interact, and ``torch.compile`` only fuses kernels of the same ops.
* Quantized linears (quant.py): ``linear_weights`` gives the weight as the kernel path multiplies it
  (``FP8Linear.kernel_weight``: its reinterpretation of the bytes and its dequantization), the
  fake-quant weight (``FP8FakeQuantLinear.dequantized_weight``), and a sharded projection's ranks
  reassembled into the full matrix.

The cross-engine noise hooks (noise_hooks.py) stay installed: every captured and replayed decoder
layer and LM head carries the same noise as in generation.
"""
from __future__ import annotations

import torch

from harness.backends.activations import ActivationModel, NotReplayable, flatten_output
from harness.backends.emulator.modules import ShardedLinear
from harness.backends.emulator.quant import FP8FakeQuantLinear, FP8Linear

CONCAT_MODES = ("colwise", "rowwise_split_input")


class EmulatorActivations(ActivationModel):
    def forward(self, ids: torch.Tensor):
        """Eager: the class's forward, not a compile backend's wrapper (module doc)."""
        return type(self.model).forward(self.model, input_ids=ids, attention_mask=torch.ones_like(ids),
                                        use_cache=False)

    def to_reference(self, module, output):
        if isinstance(output, list):
            parts = [o.detach().float() for o in output]
            if isinstance(module, ShardedLinear) and module.mode in CONCAT_MODES:
                return torch.cat(parts, dim=-1).reshape(-1)
            return torch.stack(parts).sum(0).reshape(-1)  # row-parallel partials: the all-reduce
        if isinstance(output, tuple) and output and isinstance(output[0], list):
            return self.to_reference(module, output[0])  # attention with a deferred all-reduce: (partials, None)
        return flatten_output(output)

    def adapt_value(self, module, ref_value, own_value):
        if isinstance(own_value, list) and isinstance(ref_value, torch.Tensor) and isinstance(module, ShardedLinear):
            widths = [_in_features(s) for s in module.shards]
            if sum(widths) != ref_value.shape[-1]:
                raise NotReplayable(f"{sum(widths)} input features over the ranks, the reference has "
                                    f"{ref_value.shape[-1]}")
            return list(torch.split(ref_value, widths, dim=-1))
        return super().adapt_value(module, ref_value, own_value)

    def linear_weights(self) -> dict[str, dict]:
        out = {}
        for name, mod in self.model.named_modules():
            entry = _weight_entry(mod)
            if entry is not None:
                out[name] = entry
        return out


def _in_features(mod) -> int:
    return int(getattr(mod, "in_features", None) or mod.weight.shape[1])


def _weight_entry(mod) -> dict | None:
    """{"weight", "kind", "scale"} of one linear layer as the matmul receives it, or None."""
    if isinstance(mod, FP8Linear):
        scale = mod.weight_scale
        return {"weight": mod.kernel_weight(), "kind": "fp8 kernel",
                "scale": float(scale) if scale.dim() == 0 else None}
    if isinstance(mod, FP8FakeQuantLinear):
        scale = mod.weight_scale
        return {"weight": mod.dequantized_weight(), "kind": "fp8 fake-quant",
                "scale": float(scale) if scale.dim() == 0 else None}
    if isinstance(mod, ShardedLinear):
        parts = [_weight_entry(s) for s in mod.shards]
        return {"weight": _assemble(mod, [p["weight"] for p in parts]), "kind": f"{parts[0]['kind']}, {mod.mode} "
                f"x{mod.world_size}", "scale": None}
    if isinstance(mod, torch.nn.Linear):
        return {"weight": mod.weight.detach().float(), "kind": "dense", "scale": None}
    return None


def _assemble(mod: ShardedLinear, weights: list[torch.Tensor]) -> torch.Tensor:
    """The full weight the ranks compute with together: column slices stacked, row slices side by side,
    and a wrongly split projection as the block matrix its ranks really apply."""
    if mod.mode == "colwise":
        return torch.cat(weights, dim=0)
    if mod.mode == "rowwise":
        return torch.cat(weights, dim=1)
    rows = sum(w.shape[0] for w in weights)
    full = torch.zeros(rows, mod.in_slices[-1][1], dtype=weights[0].dtype)
    r0 = 0
    for w, (a, b) in zip(weights, mod.in_slices):
        full[r0:r0 + w.shape[0], a:b] = w
        r0 += w.shape[0]
    return full
