"""The cache key of an evaluation: sha256 of everything that can change its outputs.

Parts (``key_parts``, kept so `cache ls` / the report can show why two keys differ):
- backend name and engine versions (``Backend.version_key()``: torch/transformers, tensorrt_llm);
- model: absolute path + fingerprint of its files (``harness.evaluation.fingerprint``);
- config: for backends that take AD configs, the *resolved* config (the default.yaml in force +
  the user overlay, shortcuts synced: ``harness.config.resolve``) plus the content hash of every
  plugin file; for other backends the config as given;
- task name, prompt options, and per sample (id, prompt hash, reference) from the exact prompts
  ``build_samples`` produces (so a changed data set or prompt format changes the key);
- the fully resolved sampling parameters (``sampling_for``).
- the harness version (``harness.__version__``) and ``KEY_SCHEMA``, bumped when the meaning of
  a stored row changes.
The label is not part of the key. The harness source itself is deliberately *not* hashed into the
key (editing an unrelated file would invalidate every cached evaluation and make resume depend on
nobody touching the tree); it is recorded per result as ``info["harness_code"]`` instead. While
developing code that changes generation, prompts or scoring, run ``python -m harness cache rm
--all`` or pass ``--no-cache``. ``key_digests`` (stored as ``info["key_parts"]``) shows which part
made two keys differ.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from harness.evaluation.spec import EvalSpec, build_samples, sampling_for
from harness.evaluation.fingerprint import fingerprint
from harness.evaluation.records import prompt_hash
from harness.jsonio import canonical_json

KEY_SCHEMA = 1


def _file_hash(path: str) -> str:
    p = Path(path).expanduser()
    if not p.is_file():
        return f"missing:{path}"
    return hashlib.sha256(p.read_bytes()).hexdigest()[:32]


CODE_PATHS = ("evaluate.py", "records.py", "backends", "tasks", "config")


@lru_cache(maxsize=1)
def code_hash() -> str:
    """sha256 over the harness sources that produce records (see module docstring)."""
    from harness.paths import PACKAGE_DIR

    h = hashlib.sha256()
    for rel in CODE_PATHS:
        p = PACKAGE_DIR / rel
        files = [p] if p.is_file() else sorted(p.rglob("*.py"))
        for f in files:
            h.update(f.relative_to(PACKAGE_DIR).as_posix().encode())
            h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:32]


def plugin_paths(spec: EvalSpec) -> list[str]:
    paths = list(spec.plugins or [])
    conf_plugins = (spec.config or {}).get("plugins") or []
    if isinstance(conf_plugins, (str, Path)):
        conf_plugins = [conf_plugins]
    for p in conf_plugins:
        if isinstance(p, (str, Path)) and str(p) not in paths:
            paths.append(str(p))
    return paths


def resolved_config(spec: EvalSpec, backend) -> dict:
    if not getattr(backend, "takes_ad_config", False):
        return dict(spec.config or {})
    default_yaml = backend.default_yaml()
    if not default_yaml:
        return dict(spec.config or {})
    from harness.config import Catalogue, resolve

    return resolve(Catalogue.from_yaml(default_yaml), spec.config or {})


def key_parts(spec: EvalSpec) -> dict:
    from harness import __version__
    from harness.backends import get_backend

    backend = get_backend(spec.backend)
    task, samples = build_samples(spec)
    sampling = sampling_for(task, spec)
    return {
        "schema": KEY_SCHEMA,
        "harness": __version__,
        "backend": spec.backend,
        "engine": backend.version_key(),
        "model": fingerprint(spec.model),
        "config": resolved_config(spec, backend),
        "plugins": {p: _file_hash(p) for p in plugin_paths(spec)},
        "task": spec.task,
        "prompt_options": spec.prompt_options,
        "samples": [[s.id, prompt_hash(s.prompt), s.reference] for s in samples],
        "sampling": sampling.to_dict(),
    }


def key_of(parts: dict) -> str:
    return hashlib.sha256(canonical_json(parts).encode("utf-8")).hexdigest()


def key_digests(parts: dict) -> dict:
    """A short hash per key part: compare two results' digests to see why their keys differ."""
    return {name: hashlib.sha256(canonical_json(v).encode("utf-8")).hexdigest()[:12] for name, v in parts.items()}


def eval_key(spec: EvalSpec) -> str:
    return key_of(key_parts(spec))
