"""trtllm-ad / trtllm-pt through the real adapters, in process, against the fake engine: the answers depend on
which transforms AD runs, log-probabilities reach the records, stop strings work, dumps and info are filled."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from trtllm_fake import fake_logger_handlers_reset, purge_tensorrt_llm, use_fake  # noqa: E402

from harness.backends import get_backend  # noqa: E402
from harness.backends.base import SamplingSpec  # noqa: E402
from harness.evaluation.run import run_evaluation  # noqa: E402
from harness.evaluation.spec import EvalSpec  # noqa: E402
from harness.paths import DEMO_MMLU, DEMO_MODEL  # noqa: E402

pytestmark = pytest.mark.skipif(not (DEMO_MODEL / "config.json").is_file() or not DEMO_MMLU.is_dir(),
                                reason="demo model/data not built (scripts/build_demo.py)")


@pytest.fixture
def fake(monkeypatch, tmp_path):
    yield lambda era="merged", fault=None: use_fake(monkeypatch, tmp_path, era, fault)
    purge_tensorrt_llm()
    fake_logger_handlers_reset()


def _eval(backend, config=None, n=40):
    r = run_evaluation(EvalSpec(backend=backend, model=str(DEMO_MODEL), task="mmlu", samples=n, config=config or {}))
    assert r.status == "ok", r.error
    return r


def test_answers_depend_on_the_enabled_transforms(fake):
    fake("merged", fault={"transform": "fuse_rmsnorm", "kind": "skip_layer"})
    ref = _eval("trtllm-pt")
    full = _eval("trtllm-ad")
    off = _eval("trtllm-ad", {"transforms": {"fuse_rmsnorm": {"enabled": False}}})

    assert full.metrics["score"] < ref.metrics["score"] - 10
    assert [r["output"] for r in off.records] == [r["output"] for r in ref.records]
    assert [r["answer_logprobs"] for r in off.records] == [r["answer_logprobs"] for r in ref.records]
    # log-probabilities for all four letters reach the records (paired log-prob statistics on GPU)
    assert all(r["answer_logprobs"] and set(r["answer_logprobs"]) == {"A", "B", "C", "D"} for r in full.records)
    assert all(len(r["top_logprobs"]) == 2 for r in full.records)

    by = {t["transform"]: t for t in full.info["transforms"]}
    assert by["fuse_rmsnorm"]["enabled"] is True and by["fuse_rmsnorm"]["num_matches"] > 0
    # like real FuseFP8Linear (skipped=(cnt == 0)): nothing to do on an unquantized model, and not a warning
    assert by["fuse_fp8_linear"]["status"] == "skipped" and by["fuse_fp8_linear"]["skipped"] is True
    assert by["fuse_rmsnorm"]["status"] == "applied" and "[SUMMARY] matches=" in by["fuse_rmsnorm"]["evidence"]
    assert not any("fuse_fp8_linear" in w for w in full.info["warnings"])
    assert {t["transform"]: t for t in off.info["transforms"]}["fuse_rmsnorm"]["enabled"] is False
    assert full.info["generation"]["sampling_params"]["end_id"] == -1
    assert full.info["generation"]["logprobs"] == 20
    assert full.info["tensorrt_llm"] == "1.2.0rc2" and full.info["settings"]["world_size"] == 1


def test_stop_strings_and_eos_through_the_adapter(fake):
    fake("merged")
    spec = SamplingSpec(max_tokens=12, stop=["\n"], truncate_prompt_tokens=4096, ignore_eos=False, top_logprobs=0)
    with get_backend("trtllm-ad").open(str(DEMO_MODEL), {}, {}) as eng:
        comps = eng.generate(["Which statement is correct?\nA. wrong\nB. correct\nC. no\nD. maybe\nAnswer:"], spec)
        info = eng.info()
    assert "\n" not in comps[0].text and comps[0].finish_reason in ("stop", "eos", "length")
    assert info["generation"]["sampling_params"]["end_id"] is not None  # set by _setup from the tokenizer
    assert info["generation"]["sampling_params"]["stop"] == ["\n"]


def test_dump_graphs_dir_per_open(fake, tmp_path, monkeypatch):
    fake("merged")
    monkeypatch.delenv("AD_DUMP_GRAPHS_DIR", raising=False)
    dumps = tmp_path / "dumps"
    with get_backend("trtllm-ad").open(str(DEMO_MODEL), {}, {"dump_graphs_dir": str(dumps), "label": "full"}) as eng:
        info = eng.info()
    d = Path(info["dump_graphs_dir"])
    assert d.parent == dumps.resolve() and d.name.startswith("full-")
    # utils/graph_writer.py@3286e126: NNN_<stage>_<transform>.txt, only once the model is a graph (from export on)
    assert sorted(p.name for p in d.iterdir())[0] == "001_export_export_to_gm.txt"


@pytest.mark.parametrize("log_format", ["summary", "legacy"])
def test_both_log_formats_give_the_same_records_and_accounting(fake, monkeypatch, log_format):
    fake("merged")
    monkeypatch.setenv("FAKE_TRTLLM_LOG_FORMAT", log_format)
    cfg = {"compile_backend": "torch-simple", "max_seq_len": 4096,
           "transforms": {"fuse_fp8_linear": {"enabled": True}, "fuse_gemms": {"enabled": False},
                          "compile_model": {"cuda_graph_batch_sizes": [1, 2, 4]}}}
    r = _eval("trtllm-ad", cfg, n=8)
    by = {t["transform"]: t for t in r.info["transforms"]}
    assert {t["format"] for t in r.info["transforms"]} == {log_format}
    assert by["detect_sharding"]["status"] == "skipped" and by["fuse_gemms"]["status"] == "disabled"
    assert by["fuse_moe"]["status"] == "skipped" and by["fuse_moe"]["skipped"] is False  # matches=0, as fused_moe.py
    rows = {row["key"]: row["status"] for row in r.info["config_accounting"]["rows"]}
    assert rows == {"compile_backend": "APPLIED", "max_seq_len": "APPLIED", "transforms.fuse_fp8_linear.enabled": "SKIPPED",
                    "transforms.fuse_gemms.enabled": "DISABLED",
                    "transforms.compile_model.cuda_graph_batch_sizes": "APPLIED"}
    # the user's cuda_graph_batch_sizes reached AD's validated config (copied to cuda_graph_config.batch_sizes,
    # which AD's sync would otherwise write over it with its default-filled list)
    assert r.info["transform_configs"]["compile_model"]["cuda_graph_batch_sizes"] == [1, 2, 4]
