"""``compile_model``: the four AD compile backends and their CPU equivalents.

AD (``transform/library/compile_model.py``, ``CompileModelConfig.backend``: torch-simple,
torch-compile, torch-cudagraph, torch-opt; ``compile/backends/*.py``):

* ``torch-simple``    -> eager, unchanged.
* ``torch-compile``   -> ``torch.compile`` of the model's forward (inductor on CPU; a cold compile
                         measured 15-24 s on an idle 2-core machine, 225 s under load:
                         configs/emulator/FAULTS.md, "Clean transforms").
* ``torch-cudagraph`` -> CUDA graphs are captured for a fixed set of batch sizes
                         (``cuda_graph_batch_sizes``) and a batch is padded up to the next captured
                         size before replay. CPU equivalent: every forward is padded along the batch
                         to the next bucket (padding rows copy the last real row) and run eagerly;
                         the padding rows' outputs are dropped. Rows never interact, so outputs are
                         unchanged.
* ``torch-opt``       -> torch.compile plus the cudagraph bucketing.

Every backend except torch-simple also *lowers* the graph: modules exposing ``lower_for_compile``
(the fused custom ops) switch to their compiled implementation, as an op's registered
lowering replaces its eager kernel when the graph is compiled.
"""
from __future__ import annotations

import functools

COMPILE_BACKENDS = ("torch-simple", "torch-compile", "torch-cudagraph", "torch-opt")
DEFAULT_BATCH_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256)


def _bucketed(forward, sizes):
    import torch

    sizes = sorted(int(s) for s in sizes)

    @functools.wraps(forward)
    def padded_forward(*args, **kwargs):
        ids = kwargs.get("input_ids")
        if ids is None and args:
            ids = args[0]
        if ids is None:
            return forward(*args, **kwargs)
        b = ids.shape[0]
        target = next((s for s in sizes if s >= b), None)
        if target is None or target == b:
            return forward(*args, **kwargs)
        pad = target - b
        if args:
            args = (torch.cat([args[0], args[0][-1:].expand(pad, *args[0].shape[1:])], 0),) + tuple(args[1:])
        for key in ("input_ids", "attention_mask", "position_ids"):
            t = kwargs.get(key)
            if isinstance(t, torch.Tensor) and t.dim() >= 1 and t.shape[0] == b:
                kwargs[key] = torch.cat([t, t[-1:].expand(pad, *t.shape[1:])], 0)
        out = forward(*args, **kwargs)
        out.logits = out.logits[:b]
        return out

    return padded_forward


def compile_model(model, opts: dict, ctx: dict) -> int:
    backend = opts.get("backend") or "torch-simple"
    if backend not in COMPILE_BACKENDS:
        raise ValueError(f"compile backend {backend!r} is not one of {', '.join(COMPILE_BACKENDS)}")
    if backend == "torch-simple":
        return 1
    for mod in model.modules():
        lower = getattr(mod, "lower_for_compile", None)
        if callable(lower):
            lower()
    forward = model.forward
    if backend in ("torch-compile", "torch-opt"):
        import torch

        forward = torch.compile(forward, dynamic=True)
    if backend in ("torch-cudagraph", "torch-opt"):
        sizes = opts.get("cuda_graph_batch_sizes") or ctx.get("cuda_graph_batch_sizes") or DEFAULT_BATCH_BUCKETS
        forward = _bucketed(forward, sizes)
    model.forward = forward
    return 1
