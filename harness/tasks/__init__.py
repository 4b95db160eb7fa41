"""Task registry by name; modules are imported only when a task is used."""
from __future__ import annotations

import importlib

from harness.errors import one_of

TASKS = {
    "mmlu": "harness.tasks.mmlu:MMLUTask",
    "gsm8k": "harness.tasks.gsm8k:GSM8KTask",
}


def get_task(name: str):
    if name not in TASKS:
        raise one_of("task", name, list(TASKS), "Pass --task with one of these.")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)()
