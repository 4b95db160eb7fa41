"""`check` under a real `git bisect run` over a throwaway "engine" repository: good 0, bad 1, a crashing
commit 125 (skipped), and every mistake of the user or the harness 128, so git aborts instead of
naming an innocent "first bad commit" (harness/commands/check.py, the exit-code contract)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.paths import DEMO_MMLU, REPO_ROOT

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

# The engine at each commit: a backend answering " A" (25% on the demo: good against --threshold 10),
# " Z" (never right: bad) or crashing (untestable).
ENGINE = textwrap.dedent("""\
    # engine commit {index}
    import os
    from harness.backends.base import Backend, Completion, Engine

    MODE = {mode!r}

    class _Engine(Engine):
        def generate(self, prompts, sampling):
            if MODE == "crash":
                print("engine: illegal memory access", flush=True)
                os._exit(134)
            letter = "A" if MODE == "good" else "Z"
            return [Completion(text=" " + letter, token_ids=[1], finish_reason="length", prompt_token_ids=[len(p)])
                    for p in prompts]

    class ToyEngineBackend(Backend):
        name = "toyeng"

        def open(self, model, config, context=None):
            return _Engine()

        def version_key(self):
            return {{"toyeng": MODE}}
""")
HISTORY = ["good", "good", "crash", "good", "bad", "bad"]  # c0 .. c5; the first bad commit is c4


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, env=env, check=check,
                          timeout=600)


@pytest.fixture(scope="module")
def engine_repo(tmp_path_factory) -> tuple[Path, list[str]]:
    repo = tmp_path_factory.mktemp("engine")
    _git(repo, "init", "-q")
    commits = []
    for i, mode in enumerate(HISTORY):
        (repo / "toy_engine.py").write_text(ENGINE.format(mode=mode, index=i))
        _git(repo, "add", "toy_engine.py")
        _git(repo, "commit", "-q", "-m", f"c{i} {mode}")
        commits.append(_git(repo, "rev-parse", "HEAD").stdout.strip())
    return repo, commits


def _bisect(repo: Path, commits: list[str], tmp_path: Path, *check_args: str) -> subprocess.CompletedProcess:
    """`git bisect run` of `python -m harness check ...` between c5 (bad) and c0 (good)."""
    _git(repo, "bisect", "reset", check=False)
    _git(repo, "bisect", "start", commits[-1], commits[0])
    cmd = [sys.executable, "-m", "harness", "check", "--backend", "toyeng", "--model", "toy-model",
           "--dataset", str(DEMO_MMLU), "--samples", "6", "--cache-dir", str(tmp_path / "cache"), *check_args]
    env = dict(os.environ, HARNESS_EXTRA_BACKENDS="toyeng=toy_engine:ToyEngineBackend",
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(repo)]))
    env.pop("LLM_MODELS_ROOT", None)
    out = subprocess.run(["git", "bisect", "run", *cmd], cwd=repo, capture_output=True, text=True, env=env,
                         timeout=600)
    log = _git(repo, "bisect", "log", check=False).stdout
    _git(repo, "bisect", "reset", check=False)
    out.bisect_log = log
    return out


def test_git_bisect_run_finds_the_first_bad_commit_and_skips_the_crash(engine_repo, tmp_path):
    repo, commits = engine_repo
    out = _bisect(repo, commits, tmp_path, "--threshold", "10")
    assert f"{commits[4]} is the first bad commit" in out.stdout, (out.stdout, out.stderr)
    assert f"git bisect skip {commits[2]}" in out.bisect_log  # the crashing commit: 125, skipped
    assert f"git bisect good {commits[3]}" in out.bisect_log


@pytest.mark.parametrize("mistake, needle", [
    (["--treshold", "10"], "unrecognized arguments: --treshold"),  # a typo: argparse's usage error
    (["--threshold", "10", "--seed", "-1"], "--seed must be an integer"),
    (["--threshold", "10", "--task", "nope"], "unknown task 'nope'"),
    (["--threshold", "10", "--samples", "0"], "--samples must be a positive integer"),
])
def test_a_mistake_aborts_git_bisect_instead_of_blaming_a_commit(engine_repo, tmp_path, mistake, needle):
    repo, commits = engine_repo
    out = _bisect(repo, commits, tmp_path, *mistake)
    assert out.returncode != 0
    assert "is the first bad commit" not in out.stdout
    assert "exit code 128" in out.stdout + out.stderr, (out.stdout, out.stderr)  # git: "bisect run failed"
    assert needle in out.stderr
    assert "git bisect bad" not in out.bisect_log and "git bisect skip" not in out.bisect_log
