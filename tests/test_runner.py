"""Runner: cached evaluations (a rerun evaluates nothing), keys that change exactly when outputs can,
concurrency, unresolved results re-run, bad input raised, progress lines."""
from __future__ import annotations

import io
import shutil
import time

import pytest

import executor_backends
from harness.errors import HarnessError
from harness.evaluation.spec import EvalSpec
from harness.paths import DEMO_MMLU, DEMO_MODEL
from harness.execution.progress import Progress
from harness.execution.runner import Runner
from harness.evaluation.store import Store


@pytest.fixture(autouse=True)
def planted(monkeypatch):
    executor_backends.install(monkeypatch)


def tiny_llama(path):
    """A tiny random Llama with a byte-level BPE tokenizer (when the demo model is absent)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["The following are multiple choice questions (with answers) about x.",
                             "Answer: A B C D"] * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(path)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192)
    LlamaForCausalLM(cfg).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory):
    if (DEMO_MODEL / "config.json").is_file():
        return str(DEMO_MODEL)
    return str(tiny_llama(tmp_path_factory.mktemp("tiny_llama")))


def toy(**kw) -> EvalSpec:
    kw.setdefault("model", "toy-model")
    kw.setdefault("samples", 12)
    return EvalSpec(backend=kw.pop("backend", "toy"), dataset=str(DEMO_MMLU), **kw)


def test_hf_rerun_is_served_from_the_store(tmp_path, hf_model):
    spec = EvalSpec(backend="hf", model=hf_model, dataset=str(DEMO_MMLU), samples=12, label="ref")
    with Runner(cache_dir=tmp_path, quiet=True, timeout=300) as runner:
        first = runner.evaluate(spec)
        assert first.status == "ok", first.error
        assert first.info["cached"] is False and len(first.records) == 12
        assert first.info["cache_key"] == runner.key(spec)
    with Runner(cache_dir=tmp_path, quiet=True, timeout=300) as again:  # a later run, same cache
        second = again.evaluate(spec)
        assert again.stats["evaluations_run"] == 0 and again.stats["hits"] == 1
    assert second.info["cached"] is True
    assert second.records == first.records and second.metrics == first.metrics
    assert second.info["cache_key"] == first.info["cache_key"]


def test_key_changes_exactly_when_outputs_can(tmp_path, monkeypatch):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"a": 1}')
    with Runner(cache_dir=tmp_path / "c", quiet=True) as r:
        base = r.key(toy(model=str(model)))
        assert r.key(toy(model=str(model), label="another name")) == base
        assert r.key(toy(model=str(model), samples=6)) != base
        assert r.key(toy(model=str(model), seed=1)) != base
        assert r.key(toy(model=str(model), sampling={"max_tokens": 5})) != base
        assert r.key(toy(model=str(model), prompt_options={"num_fewshot": 0})) != base
        assert r.key(toy(model=str(model), config={"compile_backend": "torch-opt"})) != base
        assert r.key(toy(model=str(model), backend="segv")) == r.key(toy(model=str(model), backend="segv"))
        copy = tmp_path / "copy"
        shutil.copytree(model, copy)
        assert r.key(toy(model=str(copy))) != base  # another path
    (model / "config.json").write_text('{"a": 2}')  # same size, new content
    with Runner(cache_dir=tmp_path / "c", quiet=True) as r:
        assert r.key(toy(model=str(model))) != base


def test_ad_config_is_keyed_resolved_and_plugins_by_content(tmp_path, monkeypatch):
    default = tmp_path / "default.yaml"
    default.write_text("compile_backend: torch-simple\ntransforms:\n  fuse_x: {stage: post_load_fusion, enabled: true}\n"
                       "  compile_model: {stage: compile, backend: torch-simple}\n")
    monkeypatch.setenv("HARNESS_TEST_DEFAULT_YAML", str(default))
    plugin = tmp_path / "plugin.py"
    plugin.write_text("X = 1\n")
    with Runner(cache_dir=tmp_path / "c", quiet=True) as r:
        empty = r.key(toy(backend="toy-ad"))
        # restating the default changes nothing AD would run, so nothing in the key
        assert r.key(toy(backend="toy-ad", config={"transforms": {"fuse_x": {"enabled": True}}})) == empty
        assert r.key(toy(backend="toy-ad", config={"transforms": {"fuse_x": {"enabled": False}}})) != empty
        # the compile_backend shortcut and the transform option are the same setting
        assert (r.key(toy(backend="toy-ad", config={"compile_backend": "torch-opt"}))
                == r.key(toy(backend="toy-ad", config={"transforms": {"compile_model": {"backend": "torch-opt"}}})))
        with_plugin = r.key(toy(backend="toy-ad", plugins=[str(plugin)]))
        assert with_plugin != empty
    plugin.write_text("X = 2\n")
    with Runner(cache_dir=tmp_path / "c", quiet=True) as r:
        assert r.key(toy(backend="toy-ad", plugins=[str(plugin)])) != with_plugin


def test_evaluate_many_runs_concurrently_in_order_and_once_per_key(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_TEST_SLEEP", "2")
    a, b = toy(label="a"), toy(seed=7, label="b")
    with Runner(cache_dir=tmp_path, quiet=True, max_parallel=2, timeout=60) as r:
        t0 = time.monotonic()
        out = r.evaluate_many([a, b, toy(label="a again")])
        wall = time.monotonic() - t0
        stats = r.stats
    assert [o.status for o in out] == ["ok", "ok", "ok"]
    assert stats["evaluations_run"] == 2 and stats["reused"] == 1 and stats["hits"] == 0
    assert out[2].info["cached"] is False  # evaluated in this run, not read from an earlier one
    assert out[0].records == out[2].records and out[0].info["cache_key"] != out[1].info["cache_key"]
    assert wall < 2 * 2 + 0.9, f"two 2-second evaluations took {wall:.1f}s with max_parallel=2"
    assert stats["backend_seconds"] >= 4.0 and stats["wall_seconds"] < stats["backend_seconds"]
    assert 2.0 <= stats["busy_seconds"] < stats["backend_seconds"]  # the two overlapped


def test_unresolved_is_stored_but_rerun_next_time(tmp_path):
    with Runner(cache_dir=tmp_path, quiet=True, timeout=60) as r:
        first = r.evaluate(toy(backend="segv"))
        second = r.evaluate(toy(backend="segv"))
        assert r.stats["evaluations_run"] == 2 and r.stats["unresolved"] == 2 and r.stats["hits"] == 0
    assert first.status == second.status == "unresolved" and "SIGSEGV" in second.error
    with Store(tmp_path) as store:
        assert [row["status"] for row in store.rows()] == ["unresolved"]


def test_parallel_batch_with_a_crash_returns_and_hands_the_crash_to_its_reader(tmp_path):
    # an unresolved result of evaluate_many is held for the next evaluate of the same spec (the judging that
    # reads the batch back), which then gets it without running the crashing worker a third time
    with Runner(cache_dir=tmp_path, quiet=True, max_parallel=2, timeout=60) as r:
        crash, ok = r.evaluate_many([toy(backend="segv"), toy()])
        again = r.evaluate(toy(backend="segv"))
        stats = r.stats
    assert crash.status == again.status == "unresolved" and ok.status == "ok"
    assert stats["evaluations_run"] == 2 and stats["reused"] == 1 and again.info.get("reused") is True


def test_no_cache_reruns_and_refreshes(tmp_path):
    with Runner(cache_dir=tmp_path, quiet=True) as r:
        r.evaluate(toy())
    with Runner(cache_dir=tmp_path, quiet=True, use_cache=False) as r:
        res = r.evaluate(toy())
        assert r.stats["evaluations_run"] == 1 and res.info["cached"] is False


def test_bad_input_is_raised(tmp_path):
    with Runner(cache_dir=tmp_path, quiet=True) as r:
        with pytest.raises(HarnessError, match="unknown backend 'nope'"):
            r.evaluate(toy(backend="nope"))
        with pytest.raises(HarnessError, match="unknown transform 'fuse_nothing'"):
            r.evaluate(toy(backend="badinput"))
        assert r.stats["evaluations_run"] == 0


def test_dump_graphs_dir_is_set_per_evaluation(tmp_path):
    with Runner(cache_dir=tmp_path / "c", quiet=True, dump_graphs_dir=tmp_path / "dumps") as r:
        res = r.evaluate(toy())
    expected = str((tmp_path / "dumps" / res.info["cache_key"][:16]).resolve())
    assert res.info["env_seen"]["AD_DUMP_GRAPHS_DIR"] == expected == res.info["harness_env"]["AD_DUMP_GRAPHS_DIR"]


def test_log_progress_prints_one_line_per_event_with_an_eta(tmp_path):
    buf = io.StringIO()  # not a terminal: plain lines (CI logs)
    with Runner(cache_dir=tmp_path, progress=Progress(stream=buf), executor="inprocess") as r:
        r.phase("Phase 0: reference", planned=3)
        r.evaluate(toy(label="reference"))
        r.evaluate(toy(label="reference"))
    lines = buf.getvalue().splitlines()
    assert "phase  Phase 0: reference" in lines[0] and "0/3]" in lines[0]
    done = [ln for ln in lines if " done " in ln or " cached " in ln]
    assert len(done) == 2
    assert "1/3 ~" in done[0] and " left]" in done[0] and "reference ok score=" in done[0]  # one more expected
    assert "2/3" in done[1] and "(cached)" in done[1]


def test_quiet_progress_prints_nothing(tmp_path):
    buf = io.StringIO()
    with Runner(cache_dir=tmp_path, progress=Progress(quiet=True, stream=buf), executor="inprocess") as r:
        r.phase("Phase 0: reference", planned=2)
        r.evaluate(toy(label="reference"))
    assert buf.getvalue() == ""


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_live_progress_renders_phases_and_evaluations(tmp_path):
    buf = _Tty()
    progress = Progress(quiet=False, stream=buf)
    assert progress.quiet is False
    with Runner(cache_dir=tmp_path, progress=progress, executor="inprocess") as r:
        r.phase("Phase 3: strip", planned=2)
        r.evaluate(toy(label="minimal"))
        with pytest.raises(HarnessError):
            r.evaluate(toy(backend="badinput", label="bad"))
    out = buf.getvalue()
    assert "phase  Phase 3: strip" in out
    assert "done   minimal ok score=" in out and "failed bad: unknown transform" in out


def test_refuses_to_run_under_torchrun():
    from harness.execution.runner import refuse_torchrun

    with pytest.raises(HarnessError, match="torchrun"):
        refuse_torchrun({"TORCHELASTIC_RUN_ID": "abc", "LOCAL_RANK": "0"})
    refuse_torchrun({"LLM_MODELS_ROOT": "/m"})


def test_results_record_which_key_part_differs(tmp_path):
    with Runner(cache_dir=tmp_path, quiet=True, executor="inprocess") as r:
        a = r.evaluate(toy(seed=0))
        b = r.evaluate(toy(seed=1))
    differing = {k for k in a.info["key_parts"] if a.info["key_parts"][k] != b.info["key_parts"][k]}
    assert differing == {"samples"}
    assert a.info["harness_code"] == b.info["harness_code"]
