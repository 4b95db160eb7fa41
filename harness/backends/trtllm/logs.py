"""Did it apply?  AD's per-transform log lines -> records, and warnings when a requested setting did not.

What AD prints (NVIDIA/TensorRT-LLM tensorrt_llm/_torch/auto_deploy/transform/interface.py,
``BaseTransform.__call__``, @01f08360 and a newer version with timing):

    [stage=post_load_fusion, transform=fuse_fp8_linear] enabled=True, num_matches=0, is_clean=True, has_valid_shapes=False
    [stage=sharding, transform=detect_sharding] enabled=False, skipped=True, is_clean=True, has_valid_shapes=True
    [stage=compile, transform=compile_model] elapsed time: total=1.234s, pre_cleanup=0.000s, apply=1.2s, post_cleanup=0.0s

A disabled transform is still called and logs ``enabled=False, skipped=True``; an enabled one logs
``num_matches=N`` (or ``skipped=True`` when ``skip_on_error`` swallowed a failure, after a warning
"Transform X failed: ...").  Newer versions also prefix every message logged *inside* a transform
with the same ``[stage=..., transform=...]`` tag (``with_transform_logging``), e.g. "Skipping sharding
for single device".

Where it goes: ``ad_logger`` is ``ADLogger(Logger)`` with PREFIX "TRT-LLM AUTO-DEPLOY",
env AUTO_DEPLOY_LOG_LEVEL, default "info" (auto_deploy/utils/logger.py@12cadfa4).  ``Logger`` builds a
python ``logging`` logger named after PREFIX, ``propagate=False``, with a StreamHandler on
**sys.stdout**, and formats ``"[TRT-LLM AUTO-DEPLOY] [RANK r] [I] <msg>"`` (tensorrt_llm/logger.py,
newer stored version; older versions, e.g. @027cd518, used ``logging.getLogger('TRT-LLM')`` with
``basicConfig``, i.e. stderr, and "[TRT-LLM] [MPI_Rank r]" prefixes).  The transforms run wherever the model is built -- possibly in MPI worker processes that
inherit our file descriptors -- so ``OutputTee`` captures file descriptors 1 and 2 (children
included) and, as a fallback for an in-process run whose ``sys.stdout`` is not fd 1, attaches a
handler to those python loggers.  Captured output is passed through to the original streams.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import threading
import uuid

LINE_RE = re.compile(r"\[stage=(?P<stage>[A-Za-z0-9_]+),\s*transform=(?P<transform>[A-Za-z0-9_\-]+)\]\s*(?P<rest>.*)")
RANK_RE = re.compile(r"\[RANK (\d+)\]|\[MPI_Rank (\d+)\]")
KV_RE = re.compile(r"(\w+)=([^,\s]+)")
ELAPSED_RE = re.compile(r"elapsed time:\s*total=([0-9.]+)s")
LOGGER_NAMES = ("TRT-LLM AUTO-DEPLOY", "TRT-LLM")


def _bool(v: str | None):
    if v is None:
        return None
    return v.strip().lower() == "true"


def parse_transform_lines(text: str) -> list[dict]:
    """Per-transform records, in execution order, from captured AD output.

    Each record: {"stage", "transform", "enabled", "skipped", "num_matches", "is_clean",
    "has_valid_shapes", "rank", "time_s", "messages"}.  Lines from ranks other than the lowest seen
    are dropped (every rank runs the same pipeline); a transform that runs twice on one rank (e.g. a
    second optimizer pass) gives two records.
    """
    per_rank: dict[int, list[dict]] = {}
    pending: dict[tuple[int, str], dict] = {}  # last record of (rank, transform), for timing/messages
    early_msgs: dict[tuple[int, str], list[str]] = {}
    for raw in text.splitlines():
        m = LINE_RE.search(raw)
        if not m:
            continue
        rm = RANK_RE.search(raw[: m.start()])
        rank = int(next(g for g in rm.groups() if g is not None)) if rm else 0
        stage, name, rest = m.group("stage"), m.group("transform"), m.group("rest").strip()
        key = (rank, name)
        if rest.startswith("enabled="):
            kv = dict(KV_RE.findall(rest))
            skipped = _bool(kv.get("skipped")) is True
            rec = {
                "stage": stage,
                "transform": name,
                "enabled": _bool(kv.get("enabled")),
                "skipped": skipped,
                "num_matches": None if skipped or "num_matches" not in kv else int(kv["num_matches"]),
                "is_clean": _bool(kv.get("is_clean")),
                "has_valid_shapes": _bool(kv.get("has_valid_shapes")),
                "rank": rank,
                "time_s": None,
                "messages": early_msgs.pop(key, []),
            }
            per_rank.setdefault(rank, []).append(rec)
            pending[key] = rec
            continue
        em = ELAPSED_RE.search(rest)
        if em and key in pending:
            pending[key]["time_s"] = float(em.group(1))
            continue
        if rest.startswith("running p") or not rest:  # "running pre-cleanup (no shape_prop)" etc.
            continue
        # a message logged inside the transform: it precedes the result line
        early_msgs.setdefault(key, []).append(rest[:300])
    if not per_rank:
        return []
    return per_rank[min(per_rank)]


def summarize(records: list[dict]) -> dict:
    """Counts for the report: enabled/ran, matched nothing, skipped after enabling."""
    enabled = [r for r in records if r["enabled"]]
    return {
        "n_transforms": len(records),
        "n_enabled": len(enabled),
        "enabled_zero_matches": [r["transform"] for r in enabled if not r["skipped"] and r["num_matches"] == 0],
        "enabled_but_skipped": [r["transform"] for r in enabled if r["skipped"]],
    }


def describe(rec: dict) -> str:
    """One line for the report, e.g. "fuse_fp8_linear [post_load_fusion]: enabled, matched 0 nodes"."""
    head = f"{rec['transform']} [{rec['stage']}]"
    if not rec["enabled"]:
        return f"{head}: disabled"
    if rec["skipped"]:
        return f"{head}: enabled but skipped" + (f" ({rec['messages'][-1]})" if rec.get("messages") else "")
    n = rec["num_matches"]
    return f"{head}: enabled, matched {n} node{'s' if n != 1 else ''}"


def not_applied_warnings(records: list[dict], config: dict, requested: dict | None = None,
                         engine_args: dict | None = None) -> list[str]:
    """Warnings for settings that did not take effect.

    ``config``: the resolved config sent to AD; ``requested``: the part the user changed relative to
    the default.yaml in force (its ``transforms`` entries and top-level keys); ``engine_args``: the
    values AD's validated ``LlmArgs`` ended up with (``compile_backend``, ``attn_backend``,
    ``world_size``, ``transforms``), read from ``llm.args`` after construction.
    """
    warnings: list[str] = []
    requested = requested or {}
    want_transforms = (config.get("transforms") or {})
    asked = set((requested.get("transforms") or {}).keys())
    by_name: dict[str, dict] = {}
    for r in records:
        by_name.setdefault(r["transform"], r)
    if want_transforms and not records:
        warnings.append("no per-transform log lines were captured (AUTO_DEPLOY_LOG_LEVEL above info?); "
                        "cannot confirm which transforms ran")
    for name, conf in want_transforms.items():
        if not isinstance(conf, dict):
            continue
        want = bool(conf.get("enabled", True))
        rec = by_name.get(name)
        if rec is None:
            if records and (name in asked or want):
                warnings.append(f"{name}: {'enabled' if want else 'disabled'} in the config but AD logged no line "
                                "for it (not in the pipeline that ran?)")
            continue
        if rec["enabled"] is not None and rec["enabled"] != want:
            warnings.append(f"{name}: requested {'enabled' if want else 'disabled'} but AD ran it "
                            f"{'enabled' if rec['enabled'] else 'disabled'} (an AD_* variable or validator overrode it?)")
        elif want and rec["skipped"]:
            why = f": {rec['messages'][-1]}" if rec.get("messages") else ""
            warnings.append(f"{name}: enabled but skipped (skip_on_error swallowed a failure?){why}")
        elif want and name in asked and rec["num_matches"] == 0:
            warnings.append(f"{name} was enabled but matched 0 nodes: the requested change had no effect on this model")
    eng = engine_args or {}
    for key in ("compile_backend", "attn_backend", "world_size"):
        if key in config and key in eng and eng[key] is not None and config[key] != eng[key]:
            warnings.append(f"{key}: requested {config[key]!r} but AD resolved {eng[key]!r}")
    eng_t = eng.get("transforms") or {}
    for name, conf in want_transforms.items():
        if isinstance(conf, dict) and name in eng_t and isinstance(eng_t[name], dict):
            want = bool(conf.get("enabled", True))
            got = eng_t[name].get("enabled", True)
            if bool(got) != want and not any(name in w for w in warnings):
                warnings.append(f"{name}: requested {'enabled' if want else 'disabled'} but AD's validated config has "
                                f"enabled={got}")
    return warnings


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
