"""Every command of the README runs as written, on a fresh copy of the repository, in README order.

A fresh copy: the files git tracks (as they are in the working tree), nothing else - no evaluation
cache, no reports. Each command is run with bash from its root, as a user pastes it; its exit status
must be 0, or the one the README gives after it (``# exit 1``). What is not run:

* ``pip install ...``: the environment the tests run in is that install (CI runs exactly it,
  .ci/run); the test checks that the torch pin is the torch installed;
* ``python -m pytest``: this suite;
* commands that need what this machine does not have - TensorRT-LLM with your model and data (the
  section "Real use: a GPU machine with TensorRT-LLM"), Slurm (root and slurm-wlm) - are parsed by the
  harness's own argument parser instead, so a flag that does not exist still fails here;
* the slow ones (a real bisect, a nightly suite with its bisect; 80-480 s each on 2 shared cores) and the
  ones that read their output: parsed only, unless HARNESS_README_ALL=1, which runs every command
  (tests/test_readme.py -k run_readme: 28 minutes on 2 cores shared with other jobs on 2026-11-29;
  reports/readme_commands.json holds each command's exit status and seconds from the last such run). The
  commands run by default take about 3 minutes at that load.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.paths import REPO_ROOT

README = REPO_ROOT / "README.md"
GPU_SECTION = "## Real use: a GPU machine with TensorRT-LLM"
RUN_ALL = os.environ.get("HARNESS_README_ALL") == "1"
NEEDS_ELSEWHERE = ("$LLM_MODELS_ROOT", "my_ad.yaml", "~/TensorRT-LLM", "/scratch/", " ... ", "--executor slurm",
                   "slurm_local.sh")


@dataclass
class Command:
    text: str
    section: str
    expected: int = 0

    @property
    def kind(self) -> str:
        if self.text.startswith("pip install"):
            return "install"
        if self.text.startswith("python -m pytest"):
            return "suite"
        if any(x in self.text for x in NEEDS_ELSEWHERE) or (self.section == GPU_SECTION and "trtllm" in self.text):
            return "elsewhere"
        if self.slow and not RUN_ALL:
            return "slow"
        return "run"

    @property
    def slow(self) -> bool:
        """A real bisect or a suite with its bisects, and the commands that read what those write."""
        t = self.text
        return ((" bisect" in t and "--dry-run" not in t) or "--bisect-on-fail" in t or " history " in t
                or "--reports reports/nightly" in t)


def _join_continuations(lines: list[str]) -> list[str]:
    out, buf = [], ""
    for line in lines:
        buf = f"{buf} {line.strip()}" if buf else line
        if buf.rstrip().endswith("\\"):
            buf = buf.rstrip()[:-1].rstrip()
            continue
        out.append(buf)
        buf = ""
    return out


def readme_commands(text: str | None = None) -> list[Command]:
    """The commands of the README, in order: code-block lines and inline code that start a command."""
    lines = _join_continuations((text if text is not None else README.read_text(encoding="utf-8")).splitlines())
    section, out = "", []
    for line in lines:
        if line.startswith("## "):
            section = line.strip()
        candidates = [line.strip()] if line.startswith("    ") else re.findall(r"`([^`]+)`", line)
        for c in candidates:
            if c.startswith(("python -m harness", "pip install", "python -m pytest", "bash scripts/")):
                expected = re.search(r"\s#\s*exit (\d+)\s*$", c)
                command = re.sub(r"\s{2,}#.*$", "", c).strip()
                out.append(Command(command, section, int(expected.group(1)) if expected else 0))
    return out


COMMANDS = readme_commands()


def test_the_readme_has_commands_of_every_kind():
    kinds = {c.kind for c in COMMANDS}
    assert {"install", "suite", "elsewhere", "run"} <= kinds, kinds
    assert len([c for c in COMMANDS if c.kind in ("run", "slow")]) >= 20


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if c.text.startswith("python -m harness")],
                         ids=lambda c: c.text[17:70])
def test_every_command_parses(cmd):
    """The harness's argument parser accepts every README command (placeholders taken out)."""
    from harness.cli import build_parser

    argv = [a for a in shlex.split(cmd.text.split(" | ")[0].replace(" ... ", " "))[3:]
            if not a.startswith("$") or "/" in a]
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's exit: 0 after --help, else an unknown flag or a bad value
        if exc.code not in (0, None):
            raise AssertionError(f"`{cmd.text}` does not parse (exit {exc.code})") from None


def test_the_install_pin_is_the_torch_installed():
    import torch

    pins = {re.search(r"torch==([\w.]+)", c.text).group(1) for c in COMMANDS if c.kind == "install"
            and "torch==" in c.text}
    assert len(pins) == 1
    if not torch.__version__.startswith(next(iter(pins))):
        pytest.skip(f"torch {torch.__version__} is installed here, not the README's pin {pins}")


@pytest.fixture(scope="module")
def fresh_copy(tmp_path_factory):
    """The tracked files of this checkout, nothing else (no .harness, no reports)."""
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are unknown")
    files = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "-z"], capture_output=True,
                           check=True).stdout.decode().split("\0")
    dest = tmp_path_factory.mktemp("fresh") / "harness"
    for f in filter(None, files):
        src = REPO_ROOT / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)
    return dest


RUNNABLE = [c for c in COMMANDS if c.kind in ("run", "slow")]
RUN_RECORD = REPO_ROOT / "reports" / "readme_commands.json"


@pytest.fixture(scope="module")
def run_record():
    """With HARNESS_README_ALL=1: each command's exit status and seconds, written to RUN_RECORD."""
    rows: list[dict] = []
    yield rows


def _write_run_record(rows: list[dict]) -> None:
    """After each command, so that a run stopped part-way keeps what it measured."""
    if RUN_ALL and rows:
        import json
        import platform

        RUN_RECORD.write_text(json.dumps({
            "date": time.strftime("%Y-%m-%d", time.gmtime()), "cpus": os.cpu_count(),
            "load_average_1min_at_end": round(os.getloadavg()[0], 1), "python": platform.python_version(),
            "total_seconds": round(sum(r["seconds"] for r in rows), 1), "commands": rows}, indent=1) + "\n")


@pytest.mark.parametrize("index", range(len(RUNNABLE)), ids=lambda i: RUNNABLE[i].text[17:70])
def test_run_readme_command(index, fresh_copy, record_property, run_record):
    """Each command as written, in README order, on the same fresh copy (later ones use what earlier
    ones wrote, as for a user following the README)."""
    cmd = RUNNABLE[index]
    if cmd.kind == "slow":
        pytest.skip("slow (a real bisect, or reads one's output): HARNESS_README_ALL=1 runs it")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "HARNESS_EXTRA_"))}
    env["PYTHONPATH"] = str(fresh_copy)  # this copy's harness, as `pip install -e .` in it would make it
    env.pop("LLM_MODELS_ROOT", None)
    t0 = time.monotonic()
    r = subprocess.run(["bash", "-c", cmd.text], cwd=fresh_copy, env=env, capture_output=True, text=True,
                       timeout=1800, stdin=subprocess.DEVNULL)
    record_property("seconds", round(time.monotonic() - t0, 1))
    run_record.append({"command": cmd.text, "exit": r.returncode, "expected": cmd.expected,
                       "seconds": round(time.monotonic() - t0, 1)})
    _write_run_record(run_record)
    assert r.returncode == cmd.expected, (f"`{cmd.text}` exited {r.returncode}, the README says {cmd.expected}\n"
                                          f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    if "--bisect-on-fail" in cmd.text:  # the culprit is named on the console
        assert "bisect: culprit: " in r.stdout, r.stdout[-3000:]
    if cmd.text.startswith("python -m harness bisect") and "--dry-run" not in cmd.text:
        assert "verdict: " in r.stdout and "report: " in r.stdout
