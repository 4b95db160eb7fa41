"""Reference scores in TensorRT-LLM's reference YAML format, looked up exactly as the engine does.

Format (tests/integration/defs/accuracy/references/<task>.yaml in NVIDIA/TensorRT-LLM): one file
per task; top-level key = model id; value = list of entries, each with ``accuracy`` (or the task's
metric name lower-cased) and optional spec keys ``dtype``, ``quant_algo``, ``kv_cache_quant_algo``,
``spec_dec_algo``, ``extra_acc_spec``, and optional overrides ``alpha``, ``beta``, ``sigma``,
``num_samples``, ``higher_is_better``.

Lookup (tests/integration/defs/accuracy/accuracy_core.py, AccuracyTask.get_hypothesis_testing_params
@00c11460): all five spec keys are always passed; the FIRST entry whose ``entry.get(key, default)``
equals the spec value for every key wins, where default is ``'auto'`` for ``dtype`` and ``None`` for
the rest (so an entry without ``dtype`` matches only ``dtype == 'auto'``); no match raises
"Not registered specs: {...}" unless TRTLLM_ACCURACY_NO_REFERENCE=1 (then the reference is 0).
A model that is missing from the file has an empty entry list, so it fails the same way.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.errors import HarnessError

SPEC_KEYS = ("dtype", "quant_algo", "kv_cache_quant_algo", "spec_dec_algo", "extra_acc_spec")
OVERRIDE_KEYS = ("alpha", "beta", "sigma", "num_samples", "higher_is_better")

# Per-task hypothesis-testing constants (accuracy_core.py@00c11460: class MMLU, class GSM8K, ...).
TASK_CONSTANTS = {
    "mmlu": dict(metric_name="accuracy", alpha=0.05, beta=0.2, sigma=50.0, num_samples=4096, higher_is_better=True),
    "gsm8k": dict(metric_name="accuracy", alpha=0.05, beta=0.2, sigma=50.0, num_samples=1319, higher_is_better=True),
    "gpqa_diamond": dict(metric_name="accuracy", alpha=0.05, beta=0.2, sigma=50.0, num_samples=198,
                         higher_is_better=True),
    "cnn_dailymail": dict(metric_name="rouge1", alpha=0.002, beta=0.2, sigma=11.06, num_samples=512,
                          higher_is_better=True),
}
GENERIC_CONSTANTS = dict(metric_name="accuracy", alpha=0.05, beta=0.2, sigma=50.0, num_samples=None,
                         higher_is_better=True)


@dataclass
class Reference:
    """The matched reference entry with the hypothesis-testing parameters it implies."""

    model: str
    task: str
    accuracy: float
    metric_name: str
    alpha: float
    beta: float
    sigma: float
    num_samples: int | None
    higher_is_better: bool
    spec: dict
    source: str  # file path (or "inline")
    entry_index: int | None  # 0-based index of the matched entry in the model's list
    registered: bool = True  # False when TRTLLM_ACCURACY_NO_REFERENCE=1 stood in for a missing entry

    def to_dict(self) -> dict:
        return asdict(self)


def normalize_spec(spec: dict | None) -> dict:
    """All five spec keys, TensorRT-LLM defaults for the missing ones (dtype 'auto', others None)."""
    spec = dict(spec or {})
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise HarnessError(f"unknown reference spec key(s) {', '.join(unknown)}; valid: {', '.join(SPEC_KEYS)}. "
                           "Fix the job's `spec:` in the suite.")
    out = {}
    for k in SPEC_KEYS:
        v = spec.get(k, "auto" if k == "dtype" else None)
        out[k] = None if v is None else str(v)  # QuantAlgo is a str enum in the engine; compare as text
    return out


def reference_file(references: str | os.PathLike, task: str) -> Path:
    """A references/ directory -> <dir>/<task>.yaml (the engine's layout); a file is used as is."""
    p = Path(references)
    if p.is_dir():
        f = p / f"{task}.yaml"
        if not f.is_file():
            have = sorted(x.stem for x in p.glob("*.yaml"))
            raise HarnessError(f"no reference file for task {task!r} in {str(p)!r} (expected {f.name}; found: "
                               f"{', '.join(have) or 'none'}). Point --references at a directory with {task}.yaml.")
        return f
    if not p.is_file():
        raise HarnessError(f"references {str(p)!r} does not exist; pass a references/ directory "
                           "(one <task>.yaml per task, TensorRT-LLM layout) or one YAML file")
    return p


def load_reference_file(path: str | os.PathLike) -> dict[str, list[dict]]:
    """Parse and validate a reference YAML: {model: [entry, ...]}."""
    from harness.config.io import load_yaml

    data = load_yaml(path, what="reference")
    for model, entries in data.items():
        if entries is None:
            data[model] = []
            continue
        if not isinstance(entries, list):
            raise HarnessError(f"{path}: model {model!r} must map to a list of entries (- accuracy: ...), "
                               f"got {type(entries).__name__}")
        for i, e in enumerate(entries):
            if not isinstance(e, dict):
                raise HarnessError(f"{path}: entry #{i + 1} of {model!r} is not a mapping")
    return data


def _entry_matches(entry: dict, spec: dict) -> bool:
    # accuracy_core.py: `default = 'auto' if key == 'dtype' else None; if entry.get(key, default) != value`
    for key, value in spec.items():
        default = "auto" if key == "dtype" else None
        got = entry.get(key, default)
        if (None if got is None else str(got)) != value:
            return False
    return True


def match_entry(entries: list[dict], spec: dict) -> tuple[int, dict] | None:
    """First entry whose spec keys all equal ``spec`` (already normalized), or None."""
    for i, entry in enumerate(entries):
        if _entry_matches(entry, spec):
            return i, entry
    return None


def lookup(table: dict[str, list[dict]], model: str, task: str, spec: dict | None = None,
           source: str = "inline", no_reference: bool | None = None) -> Reference:
    """Reference for (model, task, spec) from a parsed reference table, TensorRT-LLM semantics."""
    spec = normalize_spec(spec)
    consts = dict(TASK_CONSTANTS.get(task, GENERIC_CONSTANTS))
    entries = table.get(model, []) or []
    hit = match_entry(entries, spec)
    if no_reference is None:
        no_reference = os.environ.get("TRTLLM_ACCURACY_NO_REFERENCE") == "1"
    if hit is None:
        if no_reference:
            idx, entry = None, {consts["metric_name"].lower(): 0 if consts["higher_is_better"] else math.inf}
        else:
            shown = {k: v for k, v in spec.items()}
            if not entries:
                models = ", ".join(sorted(table)) or "none"
                raise HarnessError(f"Not registered specs: {shown} - model {model!r} has no entries in {source} "
                                   f"(models there: {models}). Add `{model}:` with an `- accuracy: ...` entry, "
                                   "or fix the model id.")
            regs = "; ".join("{" + ", ".join(f"{k}: {e[k]}" for k in SPEC_KEYS if k in e) + "}" for e in entries)
            raise HarnessError(f"Not registered specs: {shown} for {model!r} in {source}; registered: {regs} "
                               "(an entry without dtype matches only dtype 'auto'). Add an entry with these "
                               "spec keys, or fix the job's spec.")
    else:
        idx, entry = hit
    metric_key = consts["metric_name"].lower()
    acc = entry.get(metric_key, entry.get("accuracy"))
    if acc is None:
        raise HarnessError(f"{source}: entry #{(idx or 0) + 1} of {model!r} has no `{metric_key}` value; "
                           "every entry needs `accuracy: <score in percent>`")
    try:
        acc = float(acc)
    except (TypeError, ValueError):
        raise HarnessError(f"{source}: entry #{(idx or 0) + 1} of {model!r} has a non-numeric accuracy {acc!r}") from None
    num = entry.get("num_samples", consts["num_samples"])
    return Reference(
        model=model, task=task, accuracy=acc, metric_name=consts["metric_name"],
        alpha=float(entry.get("alpha", consts["alpha"])), beta=float(entry.get("beta", consts["beta"])),
        sigma=float(entry.get("sigma", consts["sigma"])), num_samples=None if num is None else int(num),
        higher_is_better=bool(entry.get("higher_is_better", consts["higher_is_better"])),
        spec=spec, source=str(source), entry_index=idx, registered=hit is not None,
    )


def find_reference(references: str | os.PathLike, model: str, task: str, spec: dict | None = None,
                   no_reference: bool | None = None) -> Reference:
    """Look up (model, task, spec) in a references/ directory or a single reference YAML file."""
    path = reference_file(references, task)
    return lookup(load_reference_file(path), model, task, spec, source=str(path), no_reference=no_reference)
