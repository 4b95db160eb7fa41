"""Make an FP8 variant of a float checkpoint, as a ModelOpt FP8 export declares itself.

The output directory holds the same config and tokenizer, weights whose linear layers are
rounded to FP8 e4m3 with a per-tensor scale (stored dequantized in float32, so every backend
loads them with plain transformers and the ``hf`` backend runs exactly the FP8 weight values),
and an ``hf_quant_config.json`` ``{"quantization": {"quant_algo": "FP8", ...}}`` -- the file AD's
``quantize_fp8_linear_from_config`` reads (``factory.get_quant_config()``), so the emulator's FP8
transforms act on this checkpoint only. ``lm_head`` (tied to the embeddings) is excluded, as
ModelOpt's default export does.

Usage: ``python -m harness.backends.emulator.fp8_checkpoint [SRC] [DST]``
(defaults: harness/assets/demo_model -> harness/assets/demo_model_fp8).
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from harness.paths import ASSETS, DEMO_MODEL

DEMO_MODEL_FP8 = ASSETS / "demo_model_fp8"
LINEAR_SUFFIXES = ("q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight",
                   "gate_proj.weight", "up_proj.weight", "down_proj.weight")


def build_fp8_checkpoint(src: str | Path = DEMO_MODEL, dst: str | Path = DEMO_MODEL_FP8) -> Path:
    import torch
    from safetensors.torch import load_file, save_file

    from harness.backends.emulator.modules import FP8_MAX

    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.suffix != ".safetensors" and f.name not in ("accuracy.json", "hf_quant_config.json"):
            shutil.copy2(f, dst / f.name)
    tensors = load_file(str(src / "model.safetensors"))
    out = {}
    for name, w in tensors.items():
        if name.endswith(LINEAR_SUFFIXES):
            wf = w.float()
            scale = (wf.abs().amax() / FP8_MAX).clamp(min=1e-12)
            out[name] = ((wf / scale).to(torch.float8_e4m3fn).float() * scale).to(w.dtype).contiguous()
        else:
            out[name] = w.contiguous()
    save_file(out, str(dst / "model.safetensors"), metadata={"format": "pt"})
    (dst / "hf_quant_config.json").write_text(json.dumps({
        "producer": {"name": "modelopt", "version": "emulated (harness fp8_checkpoint.py)"},
        "quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": None, "exclude_modules": ["lm_head"]},
    }, indent=2) + "\n")
    return dst


if __name__ == "__main__":
    args = sys.argv[1:]
    print(build_fp8_checkpoint(*(args[:2] or [])))
