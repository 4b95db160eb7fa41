"""Layer-wise comparison of a candidate with the reference at module boundaries, on the same prompt tokens.

For each prompt, the reference runs once with every module captured (inputs and output), then the
candidate runs once with the same modules captured:

* **propagated** error of a module: the candidate's output against the reference's, both models run
  end to end; an error introduced upstream is carried into every later module;
* **isolated** error: the candidate's module run once more on the *reference's* inputs for that module
  (``ActivationModel.adapt_call``: the activations are the reference's, masks and positions the
  candidate's own), against the reference's output. A module that only carries an upstream error has
  no isolated error; the module that introduces one does.

Modules are named by their dotted names in the reference model (``model.layers.1.mlp.down_proj``) and
ordered as they complete in the reference's forward pass (a submodule before its parent). A module the
candidate does not call (replaced by a fused op) has no row values and says so.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from harness.analysis.localize.metrics import Accumulator

ROLES = (  # (suffix pattern, role), first match wins
    (r"embed_tokens$", "embedding"), (r"rotary_emb$", "rotary embedding"),
    (r"layers\.\d+$", "decoder layer"), (r"self_attn$", "attention"), (r"o_proj$", "attention output projection"),
    (r"[qkv]_proj$", "attention projection"), (r"mlp$", "mlp"), (r"(gate|up|down)_proj$", "mlp projection"),
    (r"(^|\.)norm$", "final norm"), (r"layernorm$", "norm"), (r"lm_head$", "lm head"), (r"act_fn$", "activation"),
)
_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)(?:\.|$)")


def role_of(name: str) -> str:
    for pattern, role in ROLES:
        if re.search(pattern, name):
            return role
    return "module"


def layer_of(name: str) -> int | None:
    m = _LAYER.search(name)
    return int(m.group(1)) if m else None


@dataclass
class ModuleRow:
    module: str
    order: int
    propagated: Accumulator = field(default_factory=Accumulator)
    isolated: Accumulator = field(default_factory=Accumulator)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def to_dict(self) -> dict:
        return {"module": self.module, "layer": layer_of(self.module), "role": role_of(self.module),
                "order": self.order, "propagated": self.propagated.result(), "isolated": self.isolated.result(),
                "notes": list(self.notes)}


def compare_models(ref, cand, prompts) -> list[dict]:
    """Per-module rows (``ModuleRow.to_dict``) of ``cand`` against ``ref`` (``ActivationModel``s) over
    ``prompts``, a list of (1, S) token-id tensors, in the reference's completion order."""
    rows: dict[str, ModuleRow] = {}
    for ids in prompts:
        ref_cap = ref.capture(ids)
        for name in ref_cap.order:
            rows.setdefault(name, ModuleRow(name, len(rows)))
        shared = [n for n in ref_cap.order if cand.has(n)]
        for name in ref_cap.order:
            if name not in shared:
                rows[name].note("no module of this name in the candidate")
        cand_cap = cand.capture(ids, shared)
        cand_mods = cand.modules()
        for name in shared:
            row, ref_call, own = rows[name], ref_cap.calls[name], cand_cap.calls.get(name)
            if own is None or own.order < 0:
                row.note("not called in the candidate (replaced by a fused op)")
                continue
            r = ref.to_reference(None, ref_call.output)
            row.propagated.add(r, cand.to_reference(cand_mods[name], own.output))
            _isolated(cand, name, cand_mods[name], ref_call, own, r, row)
        del ref_cap, cand_cap
    return [row.to_dict() for row in sorted(rows.values(), key=lambda r: r.order)]


def _isolated(cand, name: str, module, ref_call, own, ref_out, row: ModuleRow) -> None:
    """The candidate's module on the reference's inputs, against the reference's output."""
    from harness.backends.activations import NotReplayable

    try:
        call = cand.adapt_call(name, ref_call, own)
    except NotReplayable as exc:
        row.note(f"isolated: not replayable ({exc})")
        return
    try:
        out = cand.replay(name, call)
    except Exception as exc:  # noqa: BLE001 - a module that fails on the reference's inputs is a finding
        row.note(f"isolated: the module raised {type(exc).__name__}: {str(exc)[:160]}")
        return
    row.isolated.add(ref_out, cand.to_reference(module, out))
    if row.isolated.mismatch:
        row.note(f"isolated: output shape differs from the reference's ({row.isolated.mismatch})")
