"""The layer-wise localization starts on the search's culprits while Phase 6 confirms them
(harness/bisect/localize_step.py, ``Localizer.speculate``): its result is used when Phase 6 confirms the
same culprits, recomputed when the culprits differ, and the worker is killed at once when Phase 6 confirms
nothing. The worker here is a stand-in process that answers the request it reads (the real one needs
the demo model; tests/test_bisect_emulator.py covers it end to end)."""
import json
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from harness.bisect import localize_step as ls

WORKER = """
import json, sys, time
req = json.loads(sys.stdin.read() or "null")
if req is None:
    sys.exit(0)
time.sleep(req.get("sleep", 0))
open(sys.argv[1], "w").write(json.dumps({"ran": True, "for": req["knobs"]}))
"""


@pytest.fixture
def localizer(tmp_path, monkeypatch):
    spawned = []

    def spawn(self):
        self.out_path = tmp_path / f"out{len(spawned)}.json"
        self.log_path = tmp_path / f"log{len(spawned)}.txt"
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, str(self.out_path)], stdin=subprocess.PIPE,
                                     text=True, start_new_session=True)
        spawned.append(self.proc)

    monkeypatch.setattr(ls.Localizer, "_spawn", spawn)
    monkeypatch.setattr(ls, "captures", lambda ctx: True)
    monkeypatch.setattr(ls, "culprit_target", lambda ctx, knobs: {"kind": "culprit", "knobs": knobs})
    monkeypatch.setattr(ls, "build_request", lambda ctx, state, target: {"knobs": target["knobs"], "sleep": ctx.sleep})
    monkeypatch.setattr(ls, "cache_key", lambda request: "-".join(request["knobs"]))
    monkeypatch.setattr(ls, "read_cached", lambda ctx, key: None)
    monkeypatch.setattr(ls, "write_cached", lambda ctx, key, result: None)
    monkeypatch.setattr(ls, "_with_plot", lambda ctx, result, key: dict(result))
    monkeypatch.setattr(ls, "graph_view", lambda ctx, state, knobs: None)
    ctx = SimpleNamespace(inp=SimpleNamespace(executor="local", localize=True), run_dir=tmp_path / "run",
                          phase=lambda name: None, sleep=0.0)
    state = SimpleNamespace(outcome=None, culprits=[], localization=None, run_notes={})
    loc = ls.Localizer.start(ctx, state)
    loc.spawned = spawned
    yield loc
    loc.close()


def confirm(loc, knobs):
    loc.state.outcome = "culprit"
    loc.state.culprits = [{"knobs": knobs}]


def test_confirmed_culprits_use_the_localization_started_during_phase_6(localizer):
    localizer.speculate([["fuse_rmsnorm", "fuse_add_rms_norm"]])
    deadline = time.monotonic() + 20
    while not localizer.out_path.is_file() and time.monotonic() < deadline:  # Phase 6 would run meanwhile
        time.sleep(0.05)
    assert localizer.out_path.is_file(), "the localization did not start before Phase 6's verdict"
    confirm(localizer, ["fuse_rmsnorm", "fuse_add_rms_norm"])
    localizer.run()
    assert localizer.state.localization["for"] == ["fuse_rmsnorm", "fuse_add_rms_norm"]
    assert len(localizer.spawned) == 1  # no second worker: the speculative result was the one asked for


def test_other_confirmed_culprits_are_localized_afresh(localizer):
    localizer.speculate([["fuse_silu_mul"]])
    confirm(localizer, ["optimize_rope"])
    localizer.run()
    assert localizer.state.localization["for"] == ["optimize_rope"]
    assert len(localizer.spawned) == 2


def test_unconfirmed_culprits_kill_the_running_localization_at_once(localizer):
    localizer.ctx.sleep = 60.0
    localizer.speculate([["fuse_silu_mul"]])
    proc = localizer.spawned[0]
    t0 = time.monotonic()
    localizer.close()  # Phase 6 confirmed nothing: run() returns early, close() ends the worker
    assert proc.poll() is not None and time.monotonic() - t0 < 5.0
