"""Cheap deterministic backends for the regress tests (registered through HARNESS_EXTRA_BACKENDS).
Not a test module itself.

- OracleBackend ("oracle"): answers every demo MMLU question correctly (it reads the answer key of
  the demo data set), no torch. The paired reference.
- OracleADBackend ("oracle-ad"): the same, but takes AD-style configs over
  tests/fixtures/regress_default.yaml; a transform carrying ``fault: drop`` (while enabled) makes it
  answer a deterministic fraction ``fault_strength`` (default 0.5) of the questions wrong: a planted
  regression that bisect-style knob toggling can remove. ``fault: crash`` raises in open().
"""
from __future__ import annotations

import csv
import hashlib
import os
from functools import lru_cache
from pathlib import Path

from harness.backends.base import Backend, Completion, Engine
from harness.paths import DEMO_MMLU

DEFAULT_YAML = Path(__file__).parent / "fixtures" / "regress_default.yaml"


@lru_cache(maxsize=1)
def answer_key() -> dict:
    key = {}
    for f in sorted((DEMO_MMLU / "test").glob("*.csv")):
        with open(f, newline="") as fh:
            for row in csv.reader(fh):
                if len(row) >= 6:
                    key[(row[0].strip(), tuple(c.strip() for c in row[1:5]))] = row[5].strip()
    return key


def _answer(prompt: str) -> str | None:
    block = prompt.rstrip().split("\n\n")[-1].splitlines()
    if len(block) < 6:
        return None
    question = block[0].strip()
    choices = tuple(line.split(". ", 1)[1].strip() if ". " in line else line for line in block[1:5])
    return answer_key().get((question, choices))


class OracleEngine(Engine):
    def __init__(self, wrong_fraction: float = 0.0):
        self.wrong_fraction = wrong_fraction

    def generate(self, prompts, sampling):
        out = []
        for p in prompts:
            gold = _answer(p) or "A"
            h = int(hashlib.sha256(p.encode()).hexdigest(), 16) % 1000 / 1000.0
            letter = "ABCD"[("ABCD".index(gold) + 1) % 4] if h < self.wrong_fraction else gold
            out.append(Completion(text=f" {letter}", token_ids=[ord(letter)], finish_reason="length",
                                  prompt_token_ids=[len(p)],
                                  answer_logprobs={f" {x}": (-0.05 if x == letter else -4.0) for x in "ABCD"}))
        return out

    def info(self):
        return {"engine": "oracle", "pid": os.getpid()}


class OracleBackend(Backend):
    name = "oracle"

    def open(self, model, config, context=None):
        return OracleEngine()

    def version_key(self):
        return {"oracle": "1"}


class OracleADBackend(OracleBackend):
    name = "oracle-ad"
    takes_ad_config = True

    def default_yaml(self):
        return str(DEFAULT_YAML)

    def open(self, model, config, context=None):
        wrong = 0.0
        for name, t in ((config or {}).get("transforms") or {}).items():
            if not isinstance(t, dict) or not t.get("enabled", True):
                continue
            if t.get("fault") == "crash":
                raise RuntimeError(f"transform {name} raised: fused kernel shape mismatch")
            if t.get("fault") == "drop":
                wrong = max(wrong, float(t.get("fault_strength", 0.5)))
        return OracleEngine(wrong)


EXTRA = "oracle=regress_backends:OracleBackend,oracle-ad=regress_backends:OracleADBackend"


def install(monkeypatch) -> None:
    from harness import backends

    tests_dir = str(Path(__file__).parent)
    for item in EXTRA.split(","):
        name, target = item.split("=")
        monkeypatch.setitem(backends.BACKENDS, name, target)
    monkeypatch.setenv("HARNESS_EXTRA_BACKENDS", EXTRA)
    pp = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", tests_dir + (os.pathsep + pp if pp else ""))
    monkeypatch.syspath_prepend(tests_dir)
