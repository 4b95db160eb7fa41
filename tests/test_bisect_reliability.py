"""bisect under hostile conditions: two identical runs on one store, a full disk under the report, a newline in
the config's file name, the orchestrator killed while Phase 5 runs in its background process."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bisect_helpers import needs_demo
from harness.evaluation.store import Store
from harness.paths import REPO_ROOT
from small_disk import run_on_small_disk

CONFIG = "transforms:\n  optimize_rope: {fault: rope_applied_twice}\n"
ENV = dict(os.environ, PYTHONPATH=str(REPO_ROOT))


def bisect_argv(config: Path, cache: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "harness", "bisect", "--config", str(config), "--samples", "12", "--min-effect", "3",
            "--executor", "inprocess", "--quiet", "--cache-dir", str(cache), "--out", str(out), *extra]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Two identical bisects started together on one fresh store (their store also serves the other tests)."""
    tmp = tmp_path_factory.mktemp("pair")
    config = tmp / "ad.yaml"
    config.write_text(CONFIG)
    argv = bisect_argv(config, tmp / "cache", tmp / "reports")
    procs = [subprocess.Popen(argv, env=ENV, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    return {"tmp": tmp, "config": config, "codes": [p.returncode for p in procs], "outs": outs}


@needs_demo
def test_two_identical_bisects_on_one_store_evaluate_each_configuration_once(pair):
    assert pair["codes"] == [0, 0], [o[1][-2000:] for o in pair["outs"]]
    runs = [int(re.search(r"\((\d+) run, (\d+) from the cache\)", o[0]).group(1)) for o in pair["outs"]]
    with Store(pair["tmp"] / "cache") as store:
        stored = len(store)
    assert sum(runs) == stored  # not 2 x stored: the second run waited for the first one's results
    reports = pair["tmp"] / "reports"
    (run_dir,) = [p for p in reports.iterdir()]  # one run directory, published whole; no staging left over
    assert run_dir.name.startswith("bisect-")
    assert not [p for p in run_dir.rglob("*") if p.name.endswith((".tmp", ".partial", ".old"))]
    assert not [f for f in ("summary.json", "report.md", "report.html") if ".partial" in (run_dir / f).read_text()]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["outcome"] == "culprit" and summary["culprits"][0]["knobs"] == ["optimize_rope"]
    assert all((run_dir / f).exists() for f in summary["files"].values())


@needs_demo
def test_a_full_disk_under_the_report_is_one_line_and_leaves_nothing_half_written(pair):
    """A real ENOSPC (a 200 KB tmpfs as --out); the evaluations come from the store."""
    out = pair["tmp"] / "small"
    argv = bisect_argv(pair["config"], pair["tmp"] / "cache", out)
    script = '"$@"; rc=$?; echo "left:"; find "$0" -mindepth 1; exit $rc'  # what is on the disk afterwards
    r = run_on_small_disk(out, 200, ["sh", "-c", script, str(out), *argv], env=ENV, timeout=600)
    assert r.returncode == 2, (r.stdout[-2000:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot write ") and "the disk is full" in last and "--out" in last, last
    assert str(out / "bisect-") in last and ".partial" not in last  # names the run directory asked for
    left = r.stdout.split("left:")[1].split()
    assert left == [], left  # no temp file, no half-written run directory listing files never written


@needs_demo
def test_a_newline_in_the_config_file_name_cannot_add_a_line_to_the_repro_yaml(pair, tmp_path):
    weird = tmp_path / "ad\nworld_size: 8\n.yaml"
    weird.write_text(CONFIG)
    r = subprocess.run(bisect_argv(weird, pair["tmp"] / "cache", tmp_path / "out"), env=ENV, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (run_dir,) = (tmp_path / "out").glob("bisect-*")
    text = (run_dir / "repro" / "minimal_failing.yaml").read_text()
    cfg = yaml.safe_load(text)
    assert "world_size" not in cfg and cfg["transforms"]["optimize_rope"]["fault"] == "rope_applied_twice"
    assert all(line.startswith("#") for line in text.split("transforms:")[0].splitlines() if line)


def _descendants(root: int) -> dict[int, str]:
    """{pid: command line} of every live process below ``root`` (from /proc)."""
    parent_of, cmd = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd[int(d)] = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fields[0] != "Z":
            parent_of[int(d)] = int(fields[1])
    out, frontier = {}, [root]
    while frontier:
        p = frontier.pop()
        for c, pp in parent_of.items():
            if pp == p and c not in out:
                out[c] = cmd.get(c, "")
                frontier.append(c)
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _snapshot(root: Path) -> dict:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@needs_demo
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux's")
def test_killing_the_orchestrator_during_phase5_leaves_no_process_and_nothing_more_written(tmp_path):
    argv = [sys.executable, "-m", "harness", "bisect", "--samples", "12", "--quiet", "--out", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache")]  # worker processes: Phase 5 goes to its background process
    proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: dict[int, str] = {}
    try:
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None:
            seen.update(_descendants(proc.pid))
            if any("multiprocessing.spawn" in c for c in seen.values()):
                break
            time.sleep(0.05)
        assert any("multiprocessing.spawn" in c for c in seen.values()), "Phase 5 never started in the background"
        os.kill(proc.pid, signal.SIGKILL)  # while the child is still starting up: the hardest moment
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.time() + 15
    while time.time() < deadline and any(_alive(p) for p in seen):
        time.sleep(0.2)
    assert not [(p, c[:100]) for p, c in seen.items() if _alive(p)]  # the Phase-5 child, fork server, workers
    before = _snapshot(tmp_path / "out")
    time.sleep(5)
    assert _snapshot(tmp_path / "out") == before  # nobody writes there any more
    assert not list((tmp_path / "out").rglob("per_subject.csv"))  # the breakdown never got written
