"""Example ad-emulator plugin: two transforms a user might try, configured like built-in ones.

Use it with ``--plugin configs/emulator/plugins/example_plugin.py`` (or ``plugins: [...]`` in the
YAML) and enable a transform in the config overlay:

    transforms:
      fp8_lm_head:            # an idea to try: also round the LM head to FP8
        stage: post_load_fusion
        enabled: true
      zero_attention_head:    # a bug the emulator does not ship: one attention head dropped
        stage: post_load_fusion
        enabled: true
        layer: 1
        head: 0

Every transform is ``fn(model, options, context) -> number of matches``; ``model`` is the
transformers model (already rewritten by the earlier transforms), ``options`` the transform's
config entry, ``context`` has ``world_size``, ``compile_backend``, ``attn_backend``, ``config``
(the model config) and ``model_dir``.
"""
import torch

FP8_MAX = 448.0


def fp8_lm_head(model, options, context):
    """Round the LM head weight to FP8 e4m3 with a per-tensor scale (unties it from the
    embedding so the input embedding stays in full precision)."""
    head = model.get_output_embeddings()
    w = head.weight.detach().float()
    scale = (w.abs().amax() / FP8_MAX).clamp(min=1e-12)
    q = (w / scale).to(torch.float8_e4m3fn).float() * scale
    head.weight = torch.nn.Parameter(q.to(head.weight.dtype), requires_grad=False)
    return 1


def zero_attention_head(model, options, context):
    """Zero one attention head's output (a pre-hook on that layer's o_proj input)."""
    layer = int(options.get("layer", 0))
    head = int(options.get("head", 0))
    attn = model.model.layers[layer].self_attn
    d = attn.head_dim

    def hook(module, args):
        (x,) = args
        if isinstance(x, list):  # sharded o_proj: one input per rank; leave as is
            return None
        x = x.clone()
        x[..., head * d:(head + 1) * d] = 0
        return (x,)

    attn.o_proj.register_forward_pre_hook(hook)
    return 1


TRANSFORMS = {"fp8_lm_head": fp8_lm_head, "zero_attention_head": zero_attention_head}

# Default config entries (what a default.yaml would say); a user overlay can change any of them.
DEFAULTS = {
    "fp8_lm_head": {"stage": "post_load_fusion", "enabled": False},
    "zero_attention_head": {"stage": "post_load_fusion", "enabled": False, "layer": 1, "head": 0},
}
CATEGORIES = {"fp8_lm_head": "quant_fusion", "zero_attention_head": "fusion"}
