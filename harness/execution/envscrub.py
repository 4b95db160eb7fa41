"""The environment an evaluation worker gets: config-changing variables removed, harness ones set.

The lists are data (``configs/scrub_env.yaml``, with the TensorRT-LLM sources that justify each);
this module only applies them. ``worker_env`` is pure: it takes a mapping and returns a new one
plus what it removed, so the caller records it (``info["env_scrubbed"]``) for the report.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from harness.paths import CONFIGS

SCRUB_FILE = CONFIGS / "scrub_env.yaml"

# Offline switches set for workers whose model is a local path (unless the user set them).
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
TORCH_THREADS_VAR = "HARNESS_TORCH_THREADS"  # torch.set_num_threads in the CPU backends (harness/backends/hf/backend.py)


@lru_cache(maxsize=None)
def scrub_rules(path: str = str(SCRUB_FILE)) -> dict:
    from harness.config.io import load_yaml

    data = load_yaml(Path(path), "environment scrub list")
    return {
        "prefixes": tuple(p.upper() for p in data.get("prefixes") or []),
        "names": frozenset(n.upper() for n in (data.get("legacy_field_names") or [])
                           + (data.get("launcher_names") or [])),
        "harness_owned": frozenset(n.upper() for n in data.get("harness_owned") or []),
        "never_touch": frozenset(n.upper() for n in data.get("never_touch") or []),
    }


def should_scrub(name: str, rules: dict) -> bool:
    up = name.upper()  # pydantic-settings matches env names case-insensitively
    if up in rules["never_touch"]:
        return False
    return up in rules["names"] or up in rules["harness_owned"] or up.startswith(rules["prefixes"])


def thread_env(threads: int | None, torch_threads: int | None = None) -> dict:
    """The thread variables of a worker with a budget of ``threads`` threads: OpenMP, MKL and OpenBLAS
    get the budget; torch's intra-op count is ``torch_threads`` (the backend's own, ``Backend.cpu_threads``)
    capped by the budget, or the budget when the backend has none."""
    if not threads:
        return {}
    out = {var: str(threads) for var in THREAD_VARS}
    out[TORCH_THREADS_VAR] = str(min(threads, torch_threads) if torch_threads else threads)
    return out


def worker_env(base: dict | None = None, harness_set: dict | None = None, *, threads: int | None = None,
               offline: bool = True, rules: dict | None = None, torch_threads: int | None = None) -> tuple[dict, dict]:
    """(env for the worker, {removed name: value}).

    ``harness_set`` are variables the harness itself sets for this evaluation (e.g.
    AD_DUMP_GRAPHS_DIR for --dump-graphs, the slot's CUDA_VISIBLE_DEVICES); they are applied after
    scrubbing and never recorded as removed. ``threads`` sets the thread variables
    (``thread_env``) unless the user set them. ``offline`` sets the Hugging Face offline switches
    unless the user set them.
    """
    rules = rules or scrub_rules()
    base = dict(os.environ if base is None else base)
    env, removed = {}, {}
    for name, value in base.items():
        if should_scrub(name, rules):
            removed[name] = value
        else:
            env[name] = value
    for var, value in thread_env(threads, torch_threads).items():
        env.setdefault(var, value)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if offline:
        for var in OFFLINE_VARS:
            env.setdefault(var, "1")
    env.update({k: str(v) for k, v in (harness_set or {}).items()})
    return env, dict(sorted(removed.items()))
