"""Where the shipped assets and configs live, and where data sets are looked up."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
ASSETS = PACKAGE_DIR / "assets"
DEMO_MODEL = ASSETS / "demo_model"
DEMO_MMLU = ASSETS / "demo_mmlu"
CONFIGS = REPO_ROOT / "configs"
EMULATOR_DEFAULT_YAML = CONFIGS / "emulator" / "default.yaml"
DEMO_CONFIG = CONFIGS / "demo" / "ad_demo.yaml"
KNOB_CATEGORIES = CONFIGS / "knob_categories.yaml"
TRTLLM_LOG_PATTERNS = CONFIGS / "trtllm" / "config_log_patterns.yaml"
TRTLLM_KNOWN_FIELDS = CONFIGS / "trtllm" / "llm_args_fields.yaml"

# Relative to $LLM_MODELS_ROOT, as TensorRT-LLM's accuracy tests look them up
# (tests/integration/defs/accuracy/accuracy_core.py: DATASET_DIR).
DATASET_SUBDIRS = {"mmlu": "datasets/mmlu", "gsm8k": "datasets/openai/gsm8k"}


def models_root() -> str | None:
    """$LLM_MODELS_ROOT as the user set it; never overridden (docs/method.md, Anti-patterns)."""
    return os.environ.get("LLM_MODELS_ROOT") or None


def default_dataset(task: str) -> str | None:
    """--dataset default: $LLM_MODELS_ROOT/datasets/... if set, else the shipped demo (MMLU only)."""
    root = models_root()
    if root:
        return str(Path(root) / DATASET_SUBDIRS[task])
    if task == "mmlu":
        return str(DEMO_MMLU)
    return None
