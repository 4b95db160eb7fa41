"""Quantization metadata of a checkpoint: ``quant_algo`` / ``kv_cache_quant_algo``.

TensorRT-LLM's accuracy references are keyed by ``quant_algo`` and ``kv_cache_quant_algo``
(tests/integration/defs/accuracy/references/*.yaml; ``AccuracyTask.evaluate`` reads them from
``llm.args.quant_config``).  The PyTorch backend fills that from the checkpoint; AutoDeploy does not
(its tests set ``llm.args.quant_config.quant_algo`` by hand), so the harness reads the checkpoint
itself -- for the reference-score lookup and to trigger Phase 4a (fake-quant) for AD runs.

Sources, as the PyTorch backend reads them (NVIDIA/TensorRT-LLM tensorrt_llm/_torch/model_config.py,
``ModelConfig.load_modelopt_quant_config`` / ``_build_modelopt_quant_config`` /
``load_hf_quant_config``, version read via the search tools):

1. ``hf_quant_config.json`` (ModelOpt export): ``{"quantization": {"quant_algo": "FP8",
   "kv_cache_quant_algo": "FP8", ...}}``; the strings "none"/"null"/"" mean no quantization.
2. ``config.json`` ``quantization_config``:
   * ``quant_method: "modelopt"`` (inline ModelOpt, legacy nested or flat) -> its quant_algo /
     kv_cache_quant_algo;
   * ``quant_method: "fp8"`` with ``weight_block_size`` [128, 128] -> ``FP8_BLOCK_SCALES``
     (DeepSeek-V3 style); without a block size -> ``FP8`` (HF per-tensor FP8);
   * ``"nvfp4"`` -> ``NVFP4``; ``"mxfp8"`` -> ``MXFP8``; ``"mxfp4"`` -> an MXFP4 variant chosen by GPU
     generation at load time (recorded here as ``MXFP4``);
   * anything else (``compressed-tensors``, ``gptq``, ``awq``, ...) is recorded by its
     ``quant_method`` with ``quant_algo`` left None and a note.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

_NONE = {"none", "null", ""}


@dataclass
class QuantMeta:
    quant_algo: str | None = None
    kv_cache_quant_algo: str | None = None
    source: str | None = None  # "hf_quant_config.json" | "config.json" | None
    quant_method: str | None = None  # config.json quantization_config.quant_method
    notes: list[str] = field(default_factory=list)

    @property
    def quantized(self) -> bool:
        return self.quant_algo is not None or self.kv_cache_quant_algo is not None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["quantized"] = self.quantized
        return d

    def spec(self) -> dict:
        """The keys TensorRT-LLM's reference rows are matched on (absent = not quantized)."""
        out = {}
        if self.quant_algo:
            out["quant_algo"] = self.quant_algo
        if self.kv_cache_quant_algo:
            out["kv_cache_quant_algo"] = self.kv_cache_quant_algo
        return out


def _algo(value) -> str | None:
    if value is None:
        return None
    s = str(value).strip()
    return None if s.lower() in _NONE else s.upper()


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _modelopt_inner(d: dict) -> dict:
    """The inner ModelOpt dict, legacy ``{"quantization": {...}}`` or flat."""
    inner = d.get("quantization")
    return inner if isinstance(inner, dict) else d


def from_hf_quant_config(d: dict) -> QuantMeta:
    inner = _modelopt_inner(d)
    return QuantMeta(_algo(inner.get("quant_algo")), _algo(inner.get("kv_cache_quant_algo")), "hf_quant_config.json")


def from_quantization_config(q: dict) -> QuantMeta:
    method = str(q.get("quant_method") or "").lower() or None
    meta = QuantMeta(source="config.json", quant_method=method)
    if method == "modelopt" or (method is None and ("quant_algo" in q or "quantization" in q)):
        inner = _modelopt_inner(q)
        meta.quant_algo = _algo(inner.get("quant_algo"))
        meta.kv_cache_quant_algo = _algo(inner.get("kv_cache_quant_algo"))
    elif method == "fp8":
        meta.quant_algo = "FP8_BLOCK_SCALES" if q.get("weight_block_size") else "FP8"
    elif method == "nvfp4":
        meta.quant_algo = "NVFP4"
    elif method == "mxfp8":
        meta.quant_algo = "MXFP8"
    elif method == "mxfp4":
        meta.quant_algo = "MXFP4"
        meta.notes.append("MXFP4: TensorRT-LLM picks W4A16_MXFP4 / W4A8_MXFP4_* by GPU generation at load time")
    else:
        meta.notes.append(f"quant_method {method!r}: quant_algo not derived (see the engine's load log)")
    kv = q.get("kv_cache_quant_algo") or q.get("kv_cache_scheme")
    if meta.kv_cache_quant_algo is None and isinstance(kv, str):
        meta.kv_cache_quant_algo = _algo(kv)
    return meta


def read_quant_meta(model_dir: str | Path | None) -> QuantMeta:
    """Quantization metadata of a local checkpoint directory (empty QuantMeta for a hub id or plain model)."""
    if model_dir is None:
        return QuantMeta()
    d = Path(model_dir)
    if not d.is_dir():
        return QuantMeta(notes=[f"{model_dir} is not a local directory; quantization not read"])
    hq = _read_json(d / "hf_quant_config.json")
    if hq is not None:
        meta = from_hf_quant_config(hq)
        cfg = _read_json(d / "config.json") or {}
        q = cfg.get("quantization_config")
        if isinstance(q, dict):
            meta.quant_method = str(q.get("quant_method") or "").lower() or None
        return meta
    cfg = _read_json(d / "config.json")
    if cfg and isinstance(cfg.get("quantization_config"), dict):
        return from_quantization_config(cfg["quantization_config"])
    return QuantMeta()
