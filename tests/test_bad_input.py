"""Bad input is one `error:` line and exit 2, before any evaluation where it can be checked up front; a plugin
cannot end or hang a command; a prompt longer than the model holds is truncated the same way by every
backend; file names cannot inject shell or YAML."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import executor_backends
from cli_assert import assert_one_line_error
from harness.paths import DEMO_MMLU, DEMO_MODEL, REPO_ROOT

needs_demo = pytest.mark.skipif(not (DEMO_MODEL / "config.json").is_file(), reason="demo model not built")


def harness(*args, env=None, timeout=300):
    e = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), executor_backends.TESTS_DIR]), **(env or {}))
    e.pop("LLM_MODELS_ROOT", None)
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout, env=e)


def start(*args, env=None) -> subprocess.Popen:
    e = dict(os.environ, PYTHONPATH=str(REPO_ROOT), **(env or {}))
    e.pop("LLM_MODELS_ROOT", None)
    return subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=REPO_ROOT, text=True, env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def one_line(out, *needles, code=2) -> str:
    return assert_one_line_error(out, *needles, code=code, empty_stdout=False)


@pytest.fixture
def latin1_dataset(tmp_path):
    d = tmp_path / "mmlu"
    shutil.copytree(DEMO_MMLU, d)
    with open(d / "test" / "color_facts_test.csv", "ab") as f:
        f.write("Caf\xe9 colour?,red,green,blue,white,A\n".encode("latin-1"))
    return d


def test_a_non_utf8_csv_names_file_and_line(latin1_dataset):
    path = latin1_dataset / "test" / "color_facts_test.csv"
    line = one_line(harness("prompts", "--dataset", str(latin1_dataset), "--samples", "6"), str(path), "UTF-8",
                    "0xe9")
    assert f"{path}:{len(path.read_bytes().splitlines())}" in line  # the last line holds the byte


@pytest.mark.parametrize("seed", ["-1", "99999999999"])
def test_a_seed_numpy_cannot_take_is_one_line(seed):
    one_line(harness("prompts", "--seed", seed, "--samples", "6"), "--seed", seed, "4294967295")
    one_line(harness("bisect", "--seed", seed, "--dry-run"), "--seed")


@needs_demo
@pytest.mark.parametrize("config, needles", [
    ("world_size: \"two\"\n", ["world_size", "'two'"]),
    ("transforms:\n  fuse_rmsnorm: {enabled: maybe}\n", ["fuse_rmsnorm.enabled", "'maybe'"]),
    ("transforms:\n  fuse_rmsnorm: {fault: not_a_fault}\n", ["'not_a_fault'", "hardcoded_eps"]),
])
def test_bad_config_values_fail_the_dry_run(tmp_path, config, needles):
    cfg = tmp_path / "ad.yaml"
    cfg.write_text(config)
    one_line(harness("bisect", "--config", str(cfg), "--dry-run", "--cache-dir", str(tmp_path / "c")), *needles)


def test_diagnose_checks_out_before_evaluating(tmp_path):
    marker = tmp_path / "launches.txt"
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out = harness("diagnose", "--backend", "toy", "--model", "toy-model", "--samples", "6", "--out",
                  str(blocker / "reports"), env={"HARNESS_EXTRA_BACKENDS": executor_backends.EXTRA,
                                                 "HARNESS_TEST_MARKER": str(marker)})
    one_line(out, "not writable", "--out")
    assert not marker.exists() and out.stdout == ""  # nothing evaluated, nothing printed


@pytest.fixture
def damaged_models(tmp_path):
    bad_json = tmp_path / "bad_json"
    shutil.copytree(DEMO_MODEL, bad_json)
    (bad_json / "config.json").write_text('{"model_type": "llama", ')
    truncated = tmp_path / "truncated"
    shutil.copytree(DEMO_MODEL, truncated)
    with open(truncated / "model.safetensors", "r+b") as f:
        f.truncate(100_000)
    return {"config.json": bad_json, "model.safetensors": truncated}


@needs_demo
@pytest.mark.parametrize("damaged", ["config.json", "model.safetensors"])
def test_a_damaged_checkpoint_is_bad_input_not_an_unresolved_evaluation(damaged_models, tmp_path, damaged):
    model = damaged_models[damaged]
    for backend in ("hf", "ad-emulator"):
        one_line(harness("diagnose", "--backend", backend, "--model", str(model), "--samples", "6", "--out",
                         str(tmp_path / "out")), str(model / damaged), "re-download")
    one_line(harness("bisect", "--model", str(model), "--dry-run"), str(model / damaged))
    assert not (tmp_path / "out").exists()


PLUGINS = {
    "exit_on_import": "import sys\nsys.exit(0)\n",
    "exit_in_transform": textwrap.dedent("""\
        import sys
        def leave(model, options, context):
            sys.exit(0)
        TRANSFORMS = {"leave": leave}
        DEFAULTS = {"leave": {"stage": "post_load_fusion", "enabled": True}}
    """),
    "returns_string": textwrap.dedent("""\
        def chatty(model, options, context):
            return "three matches"
        TRANSFORMS = {"chatty": chatty}
        DEFAULTS = {"chatty": {"stage": "post_load_fusion", "enabled": True}}
    """),
    "hangs": textwrap.dedent("""\
        import time
        def stuck(model, options, context):
            while True:
                time.sleep(1)
        TRANSFORMS = {"stuck": stuck}
        DEFAULTS = {"stuck": {"stage": "post_load_fusion", "enabled": True}}
    """),
}


@needs_demo
def test_plugins_cannot_end_or_hang_diagnose(tmp_path):
    """Launched together (each loads the emulator): a sys.exit in a plugin, at import or in its transform, is
    bad input naming the plugin (not a silent exit 0); a non-count return names the plugin; a hang ends at
    --timeout as an unresolved run with its run.json."""
    procs = {}
    for name, code in PLUGINS.items():
        plugin = tmp_path / f"{name}.py"
        plugin.write_text(code)
        procs[name] = start("diagnose", "--backend", "ad-emulator", "--plugin", str(plugin), "--samples", "6",
                            "--quiet", "--timeout", "20" if name == "hangs" else "280", "--out", str(tmp_path / name))
    outs = {k: subprocess.CompletedProcess(p.args, p.wait(timeout=300), *p.communicate()) for k, p in procs.items()}
    one_line(outs["exit_on_import"], "exit_on_import.py", "sys.exit(0)")
    one_line(outs["exit_in_transform"], "'leave'", "exit_in_transform.py", "sys.exit(0)")
    one_line(outs["returns_string"], "'chatty'", "returns_string.py", "'three matches'")
    hang = outs["hangs"]
    assert hang.returncode == 1 and "timeout after 20" in hang.stderr, (hang.stdout, hang.stderr)
    (run_json,) = (tmp_path / "hangs").glob("*/run.json")
    assert json.loads(run_json.read_text())["status"] == "unresolved"
    assert one_line(harness("bisect", "--plugin", str(tmp_path / "exit_on_import.py"), "--dry-run"),
                    "exit_on_import.py")


@needs_demo
def test_prompts_longer_than_the_model_are_truncated_alike_by_every_backend(tmp_path):
    """The demo model holds 1024 positions; five long few-shot rows make two prompts of ~1300 tokens. Both
    backends truncate them to 1022 (positions minus the 2 answer tokens) with the same token ids, say so, and
    count them in run.json (the emulator used to fail with IndexError, hf to run past its positions)."""
    import csv
    import random

    data = tmp_path / "mmlu"
    shutil.copytree(DEMO_MMLU, data)
    path = data / "dev" / "word_match_dev.csv"
    rows = list(csv.reader(path.open()))
    rng, words = random.Random(0), ["alpha", "gamma", "yacht", "ladder", "cactus"]
    for row in rows[:5]:
        row[0] = " ".join(rng.choice(words) for _ in range(80)) + " " + row[0]
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    procs = {b: start("diagnose", "--backend", b, "--dataset", str(data), "--samples", "12", "--quiet", "--out",
                      str(tmp_path / b)) for b in ("hf", "ad-emulator")}
    runs = {}
    for b, p in procs.items():
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-2000:]
        assert "note: 2 of 12 prompts were longer than truncate_prompt_tokens=1022" in stdout
        (run_dir,) = (tmp_path / b).iterdir()
        run = json.loads((run_dir / "run.json").read_text())
        assert run["info"]["truncated_prompts"] == 2 and run["sampling"]["truncate_prompt_tokens"] == 1022
        runs[b] = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert max(r["prompt_tokens"] for r in runs["hf"]) == 1022
    assert [r["prompt_token_hash"] for r in runs["hf"]] == [r["prompt_token_hash"] for r in runs["ad-emulator"]]


def test_slurm_pythonpath_export_keeps_a_strange_path_one_word(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    import harness.execution.slurm as slurm

    root = tmp_path / "my harness $(touch pwned) `touch pwned2`"
    monkeypatch.setattr(slurm, "REPO_ROOT", root)
    monkeypatch.setattr(slurm.shutil, "which", lambda name: "/usr/bin/" + name)
    ex = slurm.SlurmExecutor(cluster="slurm")._executor(tmp_path / "submitit")
    (line,) = [x for x in ex._executor.parameters["setup"] if "PYTHONPATH" in x]
    out = subprocess.run(["sh", "-c", f'{line}; printf %s "$PYTHONPATH"'], cwd=tmp_path, capture_output=True,
                         text=True, env={"PATH": os.environ["PATH"], "PYTHONPATH": "/already/there"})
    assert out.stdout == f"{root}:/already/there"
    assert not list(tmp_path.glob("pwned*"))
