"""Test plugin: a fusion transform that segfaults, hangs or raises on request (option `mode`)."""
import os
import signal
import time


def crash(model, options, context):
    mode = options.get("mode")
    if mode == "segv":
        print("crash_fusion: segfaulting now", flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)
    if mode == "hang":
        print("crash_fusion: hanging now", flush=True)
        time.sleep(3600)
    if mode == "raise_without_rope":
        if not context["resolved_config"]["transforms"]["optimize_rope"].get("enabled", True):
            raise RuntimeError("crash_fusion needs optimize_rope")
    return 1


TRANSFORMS = {"crash_fusion": crash}
DEFAULTS = {"crash_fusion": {"stage": "post_load_fusion", "enabled": True}}
CATEGORIES = {"crash_fusion": "fusion"}
