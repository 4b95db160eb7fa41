"""Activation capture at module boundaries, for backends that run the model's own modules in Python.

``Backend.activations(model, config, context)`` (harness/backends/base.py, capability
``supports_activation_capture``) returns an ``ActivationModel``: the loaded model with

* ``capture(ids, names=None)``: one forward pass over one prompt's token ids (no KV cache), recording
  for every named module its inputs (positional and keyword) and its output, in completion order
  (forward hooks fire when a module returns, so ``model.layers.1.mlp.down_proj`` comes before
  ``model.layers.1.mlp``, which comes before ``model.layers.1``);
* ``replay(name, call)``: that module run once more on the inputs of a ``Call`` (the isolated
  comparison feeds it the reference's inputs, ``adapt_call``);
* ``to_reference(module, output)``: the output as one float32 vector in the reference's layout (a
  backend whose modules return per-rank lists, the emulator's tensor parallelism, overrides it);
* ``linear_weights()``: every linear layer's weight as the matmul receives it (float32).

Module names are the dotted names of ``model.named_modules()`` (transformers' ``model.layers.1.mlp``);
a backend whose transforms keep the module tree (the emulator swaps classes and modules in place)
has the same names as the ``hf`` reference, so names map one to one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

# modules never compared: the whole model, the base model (its forward is the whole pass) and containers
SKIP_TYPES = (nn.ModuleList, nn.ModuleDict, nn.Sequential)


class NotReplayable(Exception):
    """The reference's inputs cannot be given to this model's module (a layout it does not take)."""


@dataclass
class Call:
    """One module call: its inputs and its output (tensors detached and cloned)."""

    args: tuple
    kwargs: dict
    output: object = None
    order: int = -1


@dataclass
class Capture:
    """The calls of one forward pass, by module name, and the names in completion order."""

    calls: dict[str, Call] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)


def _detach(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, tuple):
        return tuple(_detach(o) for o in obj)
    if isinstance(obj, list):
        return [_detach(o) for o in obj]
    if isinstance(obj, dict):
        return {k: _detach(v) for k, v in obj.items()}
    return obj


def is_activation(value) -> bool:
    """A floating-point tensor, or a tuple / list of them: data flowing between modules."""
    if isinstance(value, torch.Tensor):
        return value.is_floating_point()
    if isinstance(value, (tuple, list)) and value:
        return all(isinstance(v, torch.Tensor) and v.is_floating_point() for v in value)
    return False


def flatten_output(output) -> torch.Tensor | None:
    """Every tensor of an output, flattened and concatenated as float32 (None entries skipped)."""
    if isinstance(output, torch.Tensor):
        return output.detach().reshape(-1).float()
    if isinstance(output, (tuple, list)):
        parts = [flatten_output(o) for o in output if o is not None]
        parts = [p for p in parts if p is not None]
        return torch.cat(parts) if parts else None
    return None


class ActivationModel:
    """A loaded transformers causal LM whose modules can be captured and replayed (see module doc)."""

    # keyword inputs that are never taken from the reference: each model builds its own mask
    OWN_KWARGS = ("attention_mask",)

    def __init__(self, model, tokenizer):
        self.model = model
        self.tokenizer = tokenizer
        self._recording: Capture | None = None

    # -- what can be captured --------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        """{dotted name: module} of every module that can be captured."""
        base = getattr(self.model, "base_model_prefix", "model")
        return {name: mod for name, mod in self.model.named_modules()
                if name and name != base and not isinstance(mod, SKIP_TYPES)}

    def has(self, name: str) -> bool:
        return name in self.modules()

    # -- running --------------------------------------------------------------------------
    def forward(self, ids: torch.Tensor):
        """One forward pass over ``ids`` (1, S), no KV cache."""
        return self.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)

    def capture(self, ids: torch.Tensor, names=None) -> Capture:
        """The inputs and outputs of every module (or of ``names``) during one forward pass."""
        mods = self.modules()
        wanted = set(mods) if names is None else {n for n in names if n in mods}
        handles = []
        rec = self._recording = Capture()
        try:
            for name in wanted:
                mod = mods[name]
                handles.append(mod.register_forward_pre_hook(self._pre_hook(name), with_kwargs=True))
                handles.append(mod.register_forward_hook(self._post_hook(name)))
            with torch.no_grad():
                self.forward(ids)
            return rec
        finally:
            for h in handles:
                h.remove()
            self._recording = None

    def _pre_hook(self, name):
        def hook(module, args, kwargs):
            rec = self._recording
            if rec is not None and name not in rec.calls:
                rec.calls[name] = Call(_detach(args), _detach(kwargs))
        return hook

    def _post_hook(self, name):
        def hook(module, args, output):
            rec = self._recording
            call = rec.calls.get(name) if rec is not None else None
            if call is not None and call.order < 0:
                call.output = _detach(output)
                call.order = len(rec.order)
                rec.order.append(name)
        return hook

    def replay(self, name: str, call: Call):
        """``name``'s module run on ``call``'s inputs (nothing recorded)."""
        mod = self.modules()[name]
        with torch.no_grad():
            return mod(*call.args, **call.kwargs)

    # -- layouts ----------------------------------------------------------------------------
    def to_reference(self, module: nn.Module, output) -> torch.Tensor | None:
        """The output as one float32 vector in the reference's layout."""
        return flatten_output(output)

    def adapt_value(self, module: nn.Module, ref_value, own_value):
        """The reference's value of one input, in the layout this model's module takes."""
        if isinstance(own_value, torch.Tensor) and isinstance(ref_value, torch.Tensor) \
                and own_value.shape == ref_value.shape:
            return ref_value.to(own_value.dtype)
        if isinstance(own_value, tuple) and isinstance(ref_value, tuple) and len(own_value) == len(ref_value):
            return tuple(self.adapt_value(module, r, o) for r, o in zip(ref_value, own_value))
        raise NotReplayable(f"input of shape {_shape(ref_value)} where the module takes {_shape(own_value)}")

    def adapt_call(self, name: str, ref: Call, own: Call) -> Call:
        """This model's own call of ``name`` with every activation input replaced by the reference's
        (masks, positions and other non-activation inputs stay its own)."""
        module = self.modules()[name]
        args = list(own.args)
        for i, value in enumerate(own.args):
            if is_activation(value):
                if i >= len(ref.args):
                    raise NotReplayable(f"positional input {i} has no counterpart in the reference's call")
                args[i] = self.adapt_value(module, ref.args[i], value)
        kwargs = dict(own.kwargs)
        for key, value in own.kwargs.items():
            if key in self.OWN_KWARGS or not is_activation(value):
                continue
            if key not in ref.kwargs:
                raise NotReplayable(f"input {key!r} has no counterpart in the reference's call")
            kwargs[key] = self.adapt_value(module, ref.kwargs[key], value)
        return Call(tuple(args), kwargs)

    # -- weights ----------------------------------------------------------------------------
    def linear_weights(self) -> dict[str, dict]:
        """{name: {"weight": float32 (out, in), "kind": str, "scale": float | None}} of every linear layer."""
        return {name: {"weight": mod.weight.detach().float(), "kind": "dense", "scale": None}
                for name, mod in self.model.named_modules() if isinstance(mod, nn.Linear)}

    def close(self) -> None:
        self.model = None
        self.tokenizer = None


def _shape(value) -> str:
    if isinstance(value, torch.Tensor):
        return "x".join(map(str, value.shape))
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__}[{', '.join(_shape(v) for v in value)}]"
    return type(value).__name__
