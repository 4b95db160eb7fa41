"""``hf`` backend: a transformers causal LM from a local directory, greedy, batched.

The reference for the CPU path (and a sanity baseline on an engine machine).  Loads with
``local_files_only=True`` (HF_HUB_OFFLINE semantics: a model directory, never a Hub download),
float32 on CPU, CUDA when available (float32 too, so it is a numerical reference).
Generation is ``harness.backends.hf.generate.generate``.

CPU threads: a process that shares its cores with other workers is many times slower with
torch's default thread count (spin-waiting), so on CPU the backend sets
``torch.set_num_threads($HARNESS_TORCH_THREADS or 1)``.
"""
from __future__ import annotations

import os
from pathlib import Path

from harness.backends.base import Backend, Completion, Engine, SamplingSpec
from harness.errors import HarnessError

# the torch / transformers stack a CPU backend's worker needs (preloaded once by the fork server)
TORCH_STACK = (
    "torch",
    "transformers",
    "transformers.models.llama.modeling_llama",
    "transformers.models.auto.modeling_auto",
    "transformers.models.auto.tokenization_auto",
    "tokenizers",
    "safetensors.torch",
)


def check_model_dir(model: str) -> Path:
    """A model directory that exists and holds a config.json, else a HarnessError naming the fix."""
    path = Path(model).expanduser()
    if not path.is_dir():
        raise HarnessError(
            f"model directory {str(model)!r} does not exist; pass --model with a local Hugging Face model "
            f"directory (config.json, weights, tokenizer), e.g. the shipped demo harness/assets/demo_model")
    if not (path / "config.json").is_file():
        raise HarnessError(
            f"model directory {str(model)!r} has no config.json; pass --model with a local Hugging Face "
            f"model directory (config.json, weights, tokenizer)")
    from harness.backends.model_files import check_model_files

    check_model_files(path)  # a corrupt config.json or truncated weights: bad input, not an engine crash
    return path


def pick_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def set_cpu_threads() -> int:
    import torch

    n = int(os.environ.get("HARNESS_TORCH_THREADS", "1") or 1)
    torch.set_num_threads(max(1, n))
    return torch.get_num_threads()


# Models loaded ahead of the evaluation (``keep_loaded``): the fork server loads one before it forks, so
# each forked worker finds it in memory (its own copy-on-write copy) instead of reading it again.
_KEPT: dict[tuple[str, str, str], tuple] = {}


def keep_loaded(model: str) -> None:
    """Load ``model`` on CPU now and keep it for the next ``load_model_and_tokenizer`` of this process
    (``Backend.warm``). It also does transformers' and tokenizers' one-time work (lazy imports, first
    tokenizer build) that every fresh worker would otherwise repeat. Leaves no thread behind."""
    import tqdm
    from transformers.utils import logging as hf_logging

    interval, bars = tqdm.tqdm.monitor_interval, hf_logging.is_progress_bar_enabled()
    tqdm.tqdm.monitor_interval = 0  # no tqdm monitor thread in a process that forks
    hf_logging.disable_progress_bar()
    try:
        path = check_model_dir(model)
        _KEPT[(str(path.resolve()), "cpu", "float32")] = load_model_and_tokenizer(str(path), device="cpu")
    finally:
        tqdm.tqdm.monitor_interval = interval
        if bars:
            hf_logging.enable_progress_bar()


def load_model_and_tokenizer(model: str, device: str | None = None, dtype: str = "float32"):
    """(model, tokenizer, device) from a local directory, eval mode, no gradients. A model kept by
    ``keep_loaded`` is handed out once (the caller may transform it in place), then read again."""
    path = check_model_dir(model)  # before the heavy imports: a typo fails fast
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or pick_device()
    kept = _KEPT.pop((str(path.resolve()), device, dtype), None)
    if kept is not None:
        if device == "cpu":
            set_cpu_threads()
        return kept
    if device == "cpu":
        set_cpu_threads()
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    torch_dtype = getattr(torch, dtype)
    try:
        mdl = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=torch_dtype)
    except TypeError:  # transformers < 4.56 spells it torch_dtype
        mdl = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, torch_dtype=torch_dtype)
    mdl.to(device).eval()
    return mdl, tok, device


class HFEngine(Engine):
    def __init__(self, model_path: str, model, tokenizer, device: str):
        self.model_path = model_path
        self.model = model
        self.tokenizer = tokenizer
        self.device = device

    def generate(self, prompts: list[str], sampling: SamplingSpec) -> list[Completion]:
        from harness.backends.hf.generate import generate

        return generate(self.model, self.tokenizer, prompts, sampling, device=self.device)

    def info(self) -> dict:
        import torch
        import transformers

        return {
            "backend": "hf",
            "model": str(Path(self.model_path).resolve()),
            "device": self.device,
            "dtype": str(next(self.model.parameters()).dtype).replace("torch.", ""),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "threads": torch.get_num_threads() if self.device == "cpu" else None,
            "model_type": getattr(self.model.config, "model_type", None),
            "num_parameters": sum(p.numel() for p in self.model.parameters()),
        }

    def close(self) -> None:
        self.model = None
        self.tokenizer = None


class HFBackend(Backend):
    name = "hf"
    takes_ad_config = False
    needs_local_model = True
    cpu_threads = 1  # set_cpu_threads: one intra-op thread on CPU, whatever the worker's budget
    preload_modules = TORCH_STACK + ("harness.backends.hf.backend", "harness.backends.hf.generate")
    supports_activation_capture = True

    def activations(self, model: str, config: dict, context: dict | None = None):
        from harness.backends.activations import ActivationModel

        mdl, tok, _ = load_model_and_tokenizer(model, device="cpu")
        return ActivationModel(mdl, tok)

    @classmethod
    def warm(cls, model: str) -> None:
        keep_loaded(model)

    def open(self, model: str, config: dict, context: dict | None = None) -> Engine:
        mdl, tok, device = load_model_and_tokenizer(model)
        return HFEngine(model, mdl, tok, device)
