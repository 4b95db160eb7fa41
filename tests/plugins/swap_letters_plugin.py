"""Test plugin: a planted fault the emulator does not ship (swap two output-token rows) and a
transform that records the context it receives."""
import json

import torch


def swap_letters(model, options, context):
    """Swap the LM-head rows of two tokens (default " A" and " B" of the demo tokenizer): the
    model answers B where it meant A and vice versa."""
    a, b = int(options["token_a"]), int(options["token_b"])
    head = model.get_output_embeddings()
    w = head.weight.detach().clone()
    w[[a, b]] = w[[b, a]]
    head.weight = torch.nn.Parameter(w, requires_grad=False)
    return 2


def record_context(model, options, context):
    with open(options["out"], "w") as f:
        json.dump({"world_size": context["world_size"], "compile_backend": context["compile_backend"],
                   "attn_backend": context["attn_backend"], "stage": context["stage"],
                   "model_type": context["config"].model_type, "model_dir": context["model_dir"],
                   "options": {k: v for k, v in options.items()},
                   "fused_norm": type(model.model.norm).__name__}, f)
    return 1


TRANSFORMS = {"swap_letters": swap_letters, "record_context": record_context}
DEFAULTS = {"swap_letters": {"stage": "post_load_fusion", "enabled": False}}
