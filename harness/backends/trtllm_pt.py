"""Backend ``trtllm-pt``: the TensorRT-LLM PyTorch backend, ``tensorrt_llm.LLM`` -- the reference.

``tensorrt_llm.LLM`` is ``class LLM(_TorchLLM)`` in 1.x (tensorrt_llm/llmapi/llm.py, newest stored
version), i.e. the PyTorch backend by default; no ``backend=`` argument is passed.  Reference
settings are the accuracy tests' (tests/integration/defs/accuracy/test_llm_api_pytorch.py: the model
path and the engine defaults), so the config is normally empty.  A config may carry TorchLlmArgs
fields (validated against ``TorchLlmArgs.model_fields``, unknown keys refused with the valid list);
``world_size`` is accepted as the AD spelling of ``tensor_parallel_size``.

Generation uses exactly the SamplingParams semantics of the AD backend (harness/backends/trtllm_common.py),
so the two are paired prompt for prompt.
"""
from __future__ import annotations

import os

from harness.backends.base import Backend, Engine, SamplingSpec
from harness.backends import trtllm_common as common
from harness.backends import trtllm_version as tv
from harness.errors import HarnessError

AD_ONLY_KEYS = ("transforms", "compile_backend", "attn_backend", "mode", "yaml_extra", "yaml_default",
                "model_factory", "runtime")


def plan_pt(model: str, config: dict, valid_fields=None, version: str | None = None) -> tuple[dict, list[str]]:
    """Keyword arguments for ``tensorrt_llm.LLM`` (pure)."""
    cfg = dict(config or {})
    notes = []
    ad_only = [k for k in AD_ONLY_KEYS if k in cfg]
    if ad_only:
        raise HarnessError(f"trtllm-pt got AutoDeploy-only config keys {', '.join(ad_only)}; the PyTorch reference "
                           "takes no AD config. Pass the AD YAML to the AD backend only (--config).")
    ws = cfg.pop("world_size", None)
    if ws is not None and int(ws) > 1:
        if "tensor_parallel_size" in cfg and int(cfg["tensor_parallel_size"]) != int(ws):
            raise HarnessError(f"trtllm-pt: world_size={ws} and tensor_parallel_size={cfg['tensor_parallel_size']} "
                               "disagree. Set one.")
        cfg["tensor_parallel_size"] = int(ws)
        notes.append(f"world_size={ws} -> tensor_parallel_size={ws}")
    cfg.pop("model", None)
    tv.refuse_unknown_keys(cfg, valid_fields, "TorchLlmArgs", version)
    return {"model": model, **cfg}, notes


class PyTorchEngine(Engine):
    def __init__(self, llm, kwargs: dict, notes: list[str], install: tv.Install, model_path: str):
        self.llm = llm
        self.kwargs = kwargs
        self.notes = notes
        self.install = install
        self.model_path = model_path
        self._gen: dict = {}
        self._closed = False
        self._tok = None

    def _tokenizer(self):
        if self._tok is None:
            tok = common.hf_tokenizer(getattr(self.llm, "tokenizer", None))
            if tok is None:
                from transformers import AutoTokenizer

                tok = AutoTokenizer.from_pretrained(self.model_path)
            self._tok = tok
        return self._tok

    def generate(self, prompts: list[str], sampling: SamplingSpec):
        from tensorrt_llm import SamplingParams

        outs, details = common.generate_all(self.llm, prompts, sampling, SamplingParams)
        comps, cov = common.convert_outputs(outs, self._tokenizer(), sampling)
        self._gen = {**details, **cov,
                     "warnings": list(details.get("warnings") or []) + list(cov.get("warnings") or [])}
        w = common.seq_len_warning(getattr(getattr(self.llm, "args", None), "max_seq_len", None),
                                   cov["longest_prompt_tokens"], sampling.max_tokens)
        if w:
            self._gen["warnings"] = list(self._gen.get("warnings") or []) + [w]
        return comps

    def info(self) -> dict:
        from harness.quant_meta import read_quant_meta

        warnings = list(self.notes) + list(self._gen.get("warnings") or [])
        if self._gen.get("answer_logprobs_incomplete"):
            warnings.append(f"{self._gen['answer_logprobs_incomplete']} completions lack some answer-letter "
                            f"log-probabilities (not in the top {self._gen.get('logprobs')})")
        return {
            "engine": "tensorrt_llm",
            "backend": "trtllm-pt",
            "engine_version": self.install.version,
            "tensorrt_llm": self.install.version,
            "versions": common.versions(self.install.version),
            "install": self.install.to_dict(),
            **common.device_info(),
            "model_path": self.model_path,
            "models_root": os.environ.get(common.MODELS_ROOT_ENV),
            "pt_kwargs": self.kwargs,
            "generation": self._gen,
            "quant": read_quant_meta(self.model_path).to_dict(),
            "transforms": [],
            "warnings": warnings,
        }

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if hasattr(self.llm, "__exit__"):
            self.llm.__exit__(None, None, None)
        else:
            self.llm.shutdown()


class PyTorchBackend(Backend):
    name = "trtllm-pt"
    takes_ad_config = False

    def version_key(self) -> dict:
        return common.engine_version_key(super().version_key())

    def open(self, model: str, config: dict, context: dict | None = None) -> PyTorchEngine:
        common.check_not_torchrun()
        install = tv.discover(require_yaml=False)
        model_path, note = common.resolve_model(model)
        from tensorrt_llm import LLM

        try:
            from tensorrt_llm.llmapi import TorchLlmArgs

            valid = list(TorchLlmArgs.model_fields)
        except Exception:  # noqa: BLE001 - older layouts: source-text list
            valid = install.torch_fields
        kwargs, notes = plan_pt(model_path, config, valid, install.version)
        if note:
            notes.append(note)
        llm = LLM(**kwargs)
        if hasattr(llm, "__enter__"):
            llm = llm.__enter__() or llm
        return PyTorchEngine(llm, kwargs, notes, install, model_path)
