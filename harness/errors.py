"""Errors a user can act on: one line naming the value, the allowed values and the fix."""
from __future__ import annotations


class HarnessError(Exception):
    """A bad input or environment problem. The CLI prints ``error: <message>`` and exits 2."""

    exit_code = 2


class EngineInputError(HarnessError):
    """Bad input that the engine itself rejected in a worker (e.g. a transform this engine version does
    not have), re-raised in the orchestrator with the worker's message. Everything else is checked
    before any evaluation; ``check`` calls this one untestable at the commit (git bisect skips it)."""


def one_of(what: str, value, allowed, fix: str = "") -> HarnessError:
    allowed = sorted(allowed) if not isinstance(allowed, list) else allowed
    msg = f"unknown {what} {value!r}; valid: {', '.join(map(str, allowed))}"
    if fix:
        msg += f". {fix}"
    return HarnessError(msg)
