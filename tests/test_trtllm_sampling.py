"""SamplingParams semantics, all-at-once submission, output and log-probability conversion (trtllm_common)."""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from trtllm_fake import fake_logger_handlers_reset, purge_tensorrt_llm, use_fake  # noqa: E402

from harness.backends.trtllm import common as common  # noqa: E402
from harness.backends.base import SamplingSpec  # noqa: E402

MMLU = SamplingSpec(max_tokens=2, truncate_prompt_tokens=4094, ignore_eos=True, top_logprobs=10,
                    answer_continuations=[" A", " B", " C", " D"])
GSM8K = SamplingSpec(max_tokens=256, stop=["Question:", "</s>"], truncate_prompt_tokens=4096, ignore_eos=False,
                     top_logprobs=0)


@pytest.fixture
def fake(monkeypatch, tmp_path):
    yield lambda era="merged", fault=None: use_fake(monkeypatch, tmp_path, era, fault)
    purge_tensorrt_llm()
    fake_logger_handlers_reset()


def test_mmlu_sampling_is_the_ad_tests():
    kw = common.sampling_kwargs(MMLU, common.logprobs_to_request(MMLU))
    assert kw == {"max_tokens": 2, "n": 1, "use_beam_search": False, "truncate_prompt_tokens": 4094,
                  "end_id": -1, "pad_id": -1, "logprobs": 20}


def test_stop_strings_keep_end_id_none():
    kw = common.sampling_kwargs(GSM8K, common.logprobs_to_request(GSM8K))
    assert kw == {"max_tokens": 256, "n": 1, "use_beam_search": False, "truncate_prompt_tokens": 4096,
                  "stop": ["Question:", "</s>"]}
    both = SamplingSpec(max_tokens=8, stop=["\n\n"], ignore_eos=True, top_logprobs=0, truncate_prompt_tokens=None)
    kw = common.sampling_kwargs(both, None)
    assert kw["ignore_eos"] is True and "end_id" not in kw and "truncate_prompt_tokens" not in kw


def test_end_id_minus_one_with_stop_strings_would_fail_in_the_engine(fake):
    """Why the rule exists: _prepare_sampling_params tokenizes stop strings only when end_id is None."""
    fake("merged")
    from tensorrt_llm import SamplingParams
    from tensorrt_llm.llmapi.llm import BaseLLM

    llm = BaseLLM.__new__(BaseLLM)
    llm._engine = SimpleNamespace(tokenizer=SimpleNamespace(eos_token_id=2, pad_token_id=0,
                                                            encode=lambda s, add_special_tokens=False: [7]))
    with pytest.raises(RuntimeError, match="not processed by tokenizer"):
        llm._prepare_sampling_params(SamplingParams(end_id=-1, stop=["Question:"]))
    sp = llm._prepare_sampling_params(SamplingParams(**common.sampling_kwargs(GSM8K, None)))
    assert sp.end_id == 2 and sp._stop_word_ids == [[7], [7]]


def test_unknown_sampling_fields_dropped_with_a_note():
    from dataclasses import dataclass

    @dataclass(kw_only=True)
    class OldSamplingParams:
        max_tokens: int = 32
        end_id: int | None = None
        pad_id: int | None = None
        n: int = 1
        use_beam_search: bool = False

    sp, notes = common.make_sampling_params(OldSamplingParams, common.sampling_kwargs(MMLU, 20))
    assert sp.max_tokens == 2 and sp.end_id == -1
    assert any("truncate_prompt_tokens" in n for n in notes) and any("logprobs" in n for n in notes)


class _Tok:
    """Token ids 0..9 -> 'Ġ0'..; " A".." D" are ids 10..13."""

    def convert_ids_to_tokens(self, i):
        return {10: "ĠA", 11: "ĠB", 12: "ĠC", 13: "ĠD"}.get(i, f"t{i}")

    def encode(self, text, add_special_tokens=False):
        ids = {"Answer:": [5, 6], "Answer: A": [5, 6, 10], "Answer: B": [5, 6, 11], "Answer: C": [5, 6, 12],
               "Answer: D": [5, 6, 13]}
        return ids[text]


def _out(token_ids, logprobs, finish="length", stop_reason=None, text=" B"):
    co = SimpleNamespace(text=text, token_ids=token_ids, logprobs=logprobs, finish_reason=finish, stop_reason=stop_reason)
    return SimpleNamespace(outputs=[co], prompt_token_ids=[1, 2, 3])


def test_topk_logprob_dicts_become_top_and_answer_logprobs():
    Lp = lambda v, r: SimpleNamespace(logprob=v, rank=r)  # noqa: E731
    rows = [{11: Lp(-0.1, 1), 10: Lp(-2.5, 2), 7: Lp(-3.0, 3), 12: Lp(-4.0, 4)}, {3: Lp(-0.5, 1)}]
    spec = SamplingSpec(max_tokens=2, top_logprobs=2, answer_continuations=[" A", " B", " C", " D"])
    comp = common.to_completion(_out([11, 3], rows), _Tok(), spec, common.continuation_ids(_Tok(), spec.answer_continuations))
    assert comp.top_logprobs == [{"ĠB": -0.1, "ĠA": -2.5}, {"t3": -0.5}]
    assert comp.answer_logprobs == {" A": -2.5, " B": -0.1, " C": -4.0}
    assert comp.extra["answer_logprobs_missing"] == [" D"]
    assert comp.prompt_token_ids == [1, 2, 3] and comp.finish_reason == "length" and comp.text == " B"


def test_tokenizer_without_convert_ids_to_tokens_drops_topk_with_a_warning():
    class _EncodeOnly:  # e.g. a TensorRT-LLM tokenizer wrapper with no HF tokenizer inside
        encode = _Tok.encode

    Lp = lambda v, r: SimpleNamespace(logprob=v, rank=r)  # noqa: E731
    rows = [{11: Lp(-0.1, 1), 10: Lp(-2.5, 2)}]
    spec = SamplingSpec(max_tokens=1, top_logprobs=2, answer_continuations=[" A", " B"])
    comps, cov = common.convert_outputs([_out([11], rows)], _EncodeOnly(), spec)
    assert comps[0].top_logprobs is None  # dropped, the evaluation goes on
    assert comps[0].answer_logprobs == {" A": -2.5, " B": -0.1}  # answer-letter evidence kept
    assert any("no convert_ids_to_tokens" in w for w in cov["warnings"])


def test_old_float_logprobs_are_sampled_token_only():
    spec = SamplingSpec(max_tokens=2, top_logprobs=5, answer_continuations=[" A", " B"])
    comp = common.to_completion(_out([11, 3], [-0.2, -0.7]), _Tok(), spec, {" A": 10, " B": 11})
    assert comp.top_logprobs == [{"ĠB": -0.2}, {"t3": -0.7}]
    assert comp.answer_logprobs == {" B": -0.2} and comp.extra["logprobs_format"] == "sampled-only"


def test_no_logprobs_and_finish_reasons():
    spec = SamplingSpec(max_tokens=4, top_logprobs=5, ignore_eos=False, answer_continuations=[" A"])
    comp = common.to_completion(_out([1], None, "stop", 2), _Tok(), spec, {" A": 10})
    assert comp.top_logprobs is None and comp.answer_logprobs is None and comp.finish_reason == "eos"
    comp = common.to_completion(_out([1], [], "stop", "Question:"), _Tok(), spec, {})
    assert comp.finish_reason == "stop" and comp.extra["stop_reason"] == "Question:"


class _RecordingLLM:
    """Records the order of submissions and awaits; fails when logprobs > limit."""

    def __init__(self, limit=None):
        self.events = []
        self.limit = limit

    def generate_async(self, prompt, sampling_params=None):
        if self.limit is not None and (sampling_params.logprobs or 0) > self.limit:
            raise ValueError(f"logprobs={sampling_params.logprobs} exceeds the maximum {self.limit}")
        self.events.append(("submit", prompt))
        llm = self

        class _F:
            def result(self):
                llm.events.append(("result", prompt))
                return _out([10], [{10: -0.1}])

        return _F()



def test_submission_order_and_logprob_fallback(monkeypatch):
    from dataclasses import dataclass

    @dataclass(kw_only=True)
    class SP:
        max_tokens: int = 32
        end_id: int | None = None
        pad_id: int | None = None
        n: int = 1
        use_beam_search: bool = False
        truncate_prompt_tokens: int | None = None
        logprobs: int | None = None

    llm = _RecordingLLM()
    outs, details = common.generate_all(llm, ["p1", "p2", "p3"], MMLU, SP)
    assert [e[0] for e in llm.events] == ["submit"] * 3 + ["result"] * 3
    assert details["logprobs"] == 20 and not details["warnings"] and len(outs) == 3

    llm = _RecordingLLM(limit=1)
    outs, details = common.generate_all(llm, ["p1"], MMLU, SP)
    assert details["logprobs"] == 1 and "logprobs=20 rejected" in details["warnings"][0]

    class _Broken(_RecordingLLM):
        def generate_async(self, prompt, sampling_params=None):
            raise RuntimeError("CUDA error: an illegal memory access")

    with pytest.raises(RuntimeError, match="illegal memory"):
        common.generate_all(_Broken(), ["p"], MMLU, SP)


def test_models_root_honoured_not_overridden(monkeypatch, tmp_path):
    (tmp_path / "llama-3.1-model" / "Llama-3.1-8B").mkdir(parents=True)
    monkeypatch.setenv("LLM_MODELS_ROOT", str(tmp_path))
    path, note = common.resolve_model("llama-3.1-model/Llama-3.1-8B")
    assert path == str((tmp_path / "llama-3.1-model/Llama-3.1-8B").resolve()) and "LLM_MODELS_ROOT" in note
    assert common.resolve_model("meta-llama/Llama-3.1-8B") == ("meta-llama/Llama-3.1-8B", None)
    import os

    assert os.environ["LLM_MODELS_ROOT"] == str(tmp_path)


def test_torchrun_refused():
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="torchrun"):
        common.check_not_torchrun({"TORCHELASTIC_RUN_ID": "x"})
    common.check_not_torchrun({})


def test_dump_dirs_fresh_and_foreign_data_protected(tmp_path, monkeypatch):
    from harness.errors import HarnessError

    monkeypatch.setenv("AD_DUMP_GRAPHS_DIR", "")  # so that teardown restores its absence
    monkeypatch.delenv("AD_DUMP_GRAPHS_DIR")
    a = common.setup_dump_graphs({"dump_graphs_dir": str(tmp_path / "dumps"), "label": "ad full"})
    b = common.setup_dump_graphs({"dump_graphs_dir": str(tmp_path / "dumps"), "label": "ad full"})
    assert a != b and Path(a).parent == (tmp_path / "dumps").resolve() and not any(Path(a).iterdir())
    import os

    assert os.environ["AD_DUMP_GRAPHS_DIR"] == b
    mine = tmp_path / "precious"
    mine.mkdir()
    (mine / "notes.md").write_text("x")
    monkeypatch.setenv("AD_DUMP_GRAPHS_DIR", str(mine))
    with pytest.raises(HarnessError, match="not AD graph dumps"):
        common.setup_dump_graphs({})
    (mine / "notes.md").unlink()
    (mine / "001_factory_build_model.txt").write_text("%x = ...")
    assert common.setup_dump_graphs({}) == str(mine.resolve())


def test_seq_len_warning():
    assert "max_seq_len >= 602" in common.seq_len_warning(512, 600, 2)
    assert common.seq_len_warning(4096, 600, 2) is None and common.seq_len_warning(None, 600, 2) is None
