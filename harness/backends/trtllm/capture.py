"""Capture what AD prints while the engine is built: file descriptors 1 and 2 (children included).

AD's ``ad_logger`` writes to **stdout** (a python ``logging`` logger named after its PREFIX,
``propagate=False``, a StreamHandler on ``sys.stdout``: tensorrt_llm/logger.py, newer stored version;
auto_deploy/utils/logger.py@12cadfa4), older TensorRT-LLM loggers wrote to stderr through
``logging.basicConfig`` (tensorrt_llm/logger.py@027cd518). The transforms run wherever the model is
built -- possibly in MPI worker processes that inherit our file descriptors -- so ``OutputTee``
captures fds 1 and 2 and, as a fallback for an in-process run whose ``sys.stdout`` is not fd 1, attaches
a handler to those python loggers. Captured output is passed through to the original streams.
``harness.backends.trtllm.logs`` parses what was captured.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import uuid

from harness.backends.trtllm.logs import parse_transform_lines

LOGGER_NAMES = ("TRT-LLM AUTO-DEPLOY", "TRT-LLM")


class OutputTee:
    """Capture everything written to fds 1 and 2 (this process and children) while passing it through.

    ``start()`` before constructing the engine, ``text()`` to read what has arrived so far,
    ``stop()`` after shutting it down.  Each fd gets its own pipe and pump thread, so stdout stays
    stdout and stderr stays stderr.  Also records messages of the python loggers AD uses, for
    in-process runs where ``sys.stdout`` is not backed by fd 1 (e.g. under pytest).
    """

    def __init__(self, fds: tuple[int, ...] = (1, 2)):
        self.fds = fds
        self._pipes: dict[int, dict] = {}
        self._chunks: list[str] = []
        self._lock = threading.Lock()
        self._marker = f"__harness_tee_{uuid.uuid4().hex}__"
        self._handler: logging.Handler | None = None
        self.log_messages: list[str] = []
        self.active = False

    # -- python logging fallback ------------------------------------------------------------
    def _attach_handler(self) -> None:
        tee = self

        class _H(logging.Handler):
            def emit(self, record):
                try:
                    tee.log_messages.append(record.getMessage())
                except Exception:  # noqa: BLE001
                    pass

        self._handler = _H(level=logging.DEBUG)
        for name in LOGGER_NAMES:
            logging.getLogger(name).addHandler(self._handler)

    def _detach_handler(self) -> None:
        if self._handler is not None:
            for name in LOGGER_NAMES:
                logging.getLogger(name).removeHandler(self._handler)
            self._handler = None

    # -- fd capture ------------------------------------------------------------------------
    @staticmethod
    def _flush() -> None:
        for s in (sys.stdout, sys.stderr):
            try:
                s.flush()
            except Exception:  # noqa: BLE001
                pass

    def start(self) -> "OutputTee":
        self._attach_handler()
        self._flush()
        for fd in self.fds:
            try:
                r, w = os.pipe()
                saved = os.dup(fd)
                os.dup2(w, fd)
            except OSError:
                continue
            p = {"read": r, "write": w, "saved": saved, "seen": threading.Event()}
            p["thread"] = threading.Thread(target=self._pump, args=(p,), name=f"harness-tee-{fd}", daemon=True)
            self._pipes[fd] = p
            p["thread"].start()
        self.active = bool(self._pipes)
        return self

    def _pump(self, p: dict) -> None:
        buf = b""
        while True:
            try:
                data = os.read(p["read"], 65536)
            except OSError:
                break
            if not data:
                break
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                self._handle_line(line + b"\n", p)
        if buf:
            self._handle_line(buf, p)

    def _handle_line(self, line: bytes, p: dict) -> None:
        text = line.decode("utf-8", errors="replace")
        if self._marker in text:
            p["seen"].set()
            return
        with self._lock:
            self._chunks.append(text)
        if p.get("saved") is not None:
            try:
                os.write(p["saved"], line)
            except OSError:
                pass

    def sync(self, timeout: float = 2.0) -> None:
        """Wait until everything this process wrote so far has been read by the pump threads."""
        if not self.active:
            return
        self._flush()
        for p in self._pipes.values():
            if p.get("write") is None:
                continue
            p["seen"].clear()
            try:
                os.write(p["write"], (self._marker + "\n").encode())
            except OSError:
                continue
            p["seen"].wait(timeout)

    def text(self) -> str:
        self.sync()
        with self._lock:
            return "".join(self._chunks)

    def records(self) -> list[dict]:
        """Transform records from fd output, else from the python loggers (never both: no duplicates)."""
        recs = parse_transform_lines(self.text())
        if recs:
            return recs
        return parse_transform_lines("\n".join(self.log_messages))

    def stop(self, timeout: float = 5.0) -> None:
        """Restore fds 1 and 2.  Children still holding the pipe keep their pump thread alive."""
        self._detach_handler()
        if not self.active:
            return
        self.sync(timeout=1.0)
        self.active = False
        for fd, p in self._pipes.items():
            try:
                os.dup2(p["saved"], fd)
            except OSError:
                pass
            os.close(p["write"])
            p["write"] = None
        for p in self._pipes.values():
            p["thread"].join(timeout)
            if not p["thread"].is_alive():  # only then are the saved copy and the read end unused
                os.close(p["saved"])
                os.close(p["read"])
                p["saved"] = None
