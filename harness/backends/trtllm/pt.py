"""Backend ``trtllm-pt``: the TensorRT-LLM PyTorch backend, ``tensorrt_llm.LLM`` -- the reference.

``tensorrt_llm.LLM`` is ``class LLM(_TorchLLM)`` in 1.x (tensorrt_llm/llmapi/llm.py, newest stored
version), i.e. the PyTorch backend by default; no ``backend=`` argument is passed.  Reference
settings are the accuracy tests' (tests/integration/defs/accuracy/test_llm_api_pytorch.py: the model
path and the engine defaults), so the config is normally empty.  A config may carry TorchLlmArgs
fields (validated against ``TorchLlmArgs.model_fields``, unknown keys refused with the valid list);
``world_size`` is accepted as the AD spelling of ``tensor_parallel_size``.

Generation uses exactly the SamplingParams semantics of the AD backend (harness/backends/trtllm/common.py),
so the two are paired prompt for prompt.
"""
from __future__ import annotations


from harness.backends.trtllm import common as common
from harness.backends.trtllm import version as tv
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


class PyTorchEngine(common.TrtllmEngine):
    backend_name = "trtllm-pt"

    def __init__(self, llm, kwargs: dict, notes: list[str], install: tv.Install, model_path: str):
        super().__init__(llm, install, model_path)
        self.kwargs = kwargs
        self.notes = notes

    def info(self) -> dict:
        return {
            **self._common_info(),
            "pt_kwargs": self.kwargs,
            "transforms": [],
            "warnings": list(self.notes) + self._generation_warnings(),
        }

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._shutdown_llm()


class PyTorchBackend(common.TrtllmBackend):
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
