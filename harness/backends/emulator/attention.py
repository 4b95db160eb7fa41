"""Attention backends of the emulator: one CPU kernel per ``attn_backend``, each with its own numerics.

AD's ``insert_cached_attention`` swaps the attention op for the kernel of the selected backend
(``backend`` option, the ``attn_backend`` shortcut; registered names in NVIDIA/TensorRT-LLM
tensorrt_llm/_torch/auto_deploy/custom_ops/ via ``AttentionRegistry.register``: ``flashinfer``,
``trtllm``, ``torch``, ``triton`` / ``triton_paged``). Real kernels differ in precision, so the CPU
stand-ins do too, by amounts that keep a clean run ``same`` as the reference:

| backend | kernel |
|---|---|
| trtllm, torch_sdpa | PyTorch SDPA in float32 |
| flashinfer | q, k, v and the output rounded to bfloat16 (a bf16-in, bf16-out kernel), SDPA in between |
| torch | explicit float32 math (softmax of masked scores, then the weighted sum) |
| triton, triton_paged | the same math with the softmax probabilities rounded to float16 |

Each kernel is registered with transformers' ``AttentionInterface`` (and its mask with
``AttentionMaskInterface``, so padded batches are masked exactly as for SDPA); ``insert_cached_attention``
selects it with ``set_attn_implementation``. The fault ``attention_kernel_bug`` plants a bug in *one*
backend's kernel (``fault_backend``, default: the backend in use when it is planted): its softmax scale
becomes ``head_dim ** -p`` (``fault_strength`` p, default 1.0; 0.5 is correct). Switching
``attn_backend`` away from that backend removes it -- what the core-path ladder
(harness/bisect/core_path.py) tries.
"""
from __future__ import annotations

KERNELS = {"trtllm": "sdpa", "torch_sdpa": "sdpa", "flashinfer": "bf16_io", "torch": "math",
           "triton": "fp16_probs", "triton_paged": "fp16_probs"}


def _repeat_kv(x, groups: int):
    return x if groups == 1 else x.repeat_interleave(groups, dim=1)


def _math(q, k, v, mask, scaling: float, probs_dtype=None):
    """(B, H, S, D) x (B, Hkv, T, D) -> (B, S, H, D): masked softmax attention in float32."""
    import torch

    groups = q.shape[1] // k.shape[1]
    k, v = _repeat_kv(k, groups), _repeat_kv(v, groups)
    scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scaling
    S, T = scores.shape[-2:]
    if mask is None:
        causal = torch.ones(S, T, dtype=torch.bool, device=q.device).tril(T - S)
        scores = scores.masked_fill(~causal, float("-inf"))
    elif mask.dtype == torch.bool:
        scores = scores.masked_fill(~mask, float("-inf"))
    else:
        scores = scores + mask
    probs = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # a fully masked (padding) row attends to nothing
    if probs_dtype is not None:
        probs = probs.to(probs_dtype).float()
    return torch.matmul(probs, v.float()).to(q.dtype).transpose(1, 2).contiguous()


def _sdpa(module, q, k, v, mask, scaling: float, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(module, q, k, v, mask, scaling=scaling, **kwargs)


def _run(kernel: str, module, q, k, v, mask, scaling: float, **kwargs):
    import torch

    if kernel == "sdpa":
        return _sdpa(module, q, k, v, mask, scaling, **kwargs)
    if kernel == "bf16_io":
        bf = [t.to(torch.bfloat16).to(t.dtype) for t in (q, k, v)]
        out, w = _sdpa(module, *bf, mask, scaling, **kwargs)
        return out.to(torch.bfloat16).to(q.dtype), w
    if kernel == "math":
        return _math(q, k, v, mask, scaling), None
    if kernel == "fp16_probs":
        return _math(q, k, v, mask, scaling, probs_dtype=torch.float16), None
    raise ValueError(f"unknown emulator attention kernel {kernel!r}")


def _make(kernel: str, bug_exponent: float | None):
    def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        head_dim = query.shape[-1]
        scale = float(head_dim) ** -0.5 if scaling is None else float(scaling)
        if bug_exponent is not None:
            scale = float(head_dim) ** -float(bug_exponent)
        kwargs.pop("is_causal", None)
        return _run(kernel, module, query, key, value, attention_mask, scale, **kwargs)

    return attention


def implementation(backend: str, bug_exponent: float | None = None) -> str:
    """Register (once per process) and return the attention implementation name for ``backend``.

    Names avoid "flash": transformers treats such names as hub flash-attention kernels."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if backend not in KERNELS:
        raise ValueError(f"attention backend {backend!r} is not one of {', '.join(KERNELS)}")
    name = f"emu_attn_{KERNELS[backend]}" + ("" if bug_exponent is None else f"_bug{float(bug_exponent):g}")
    if name not in AttentionInterface._global_mapping:
        AttentionInterface.register(name, _make(KERNELS[backend], bug_exponent))
        AttentionMaskInterface.register(name, sdpa_mask)
    return name
