"""The graph view of Phase 4's localization: real AutoDeploy's per-transform graph dumps (AD_DUMP_GRAPHS_DIR),
here written by the fake engine in AD's format (utils/graph_writer.py@3286e126), diffed before and after the
culprit transform; and `python -m harness localize --dumps` for a backend without activation capture."""
from __future__ import annotations

import json
import re

import pytest

from trtllm_fake import fake_logger_handlers_reset, purge_tensorrt_llm, use_fake  # noqa: E402

from harness.analysis.localize.graph_diff import around, list_dumps, parse_dump  # noqa: E402
from harness.paths import DEMO_MMLU, DEMO_MODEL  # noqa: E402

pytestmark = pytest.mark.skipif(not (DEMO_MODEL / "config.json").is_file() or not DEMO_MMLU.is_dir(),
                                reason="demo model/data not built (scripts/build_demo.py)")


@pytest.fixture
def dumps(monkeypatch, tmp_path):
    """Build AD (the fake) once with AD_DUMP_GRAPHS_DIR set; returns the dump directory of a config."""
    def build(config: dict):
        from harness.backends import get_backend

        use_fake(monkeypatch, tmp_path, "merged")
        out = tmp_path / "dumps"
        with get_backend("trtllm-ad").open(str(DEMO_MODEL), config, {"dump_graphs_dir": str(out), "label": "c"}) as eng:
            return eng.info()["dump_graphs_dir"]
    yield build
    purge_tensorrt_llm()
    fake_logger_handlers_reset()


def test_dumps_follow_ads_naming_one_per_transform_even_disabled(dumps):
    d = dumps({"transforms": {"fuse_add_rms_norm": {"enabled": False}}})
    found = list_dumps(d)
    assert [x.index for x in found] == list(range(1, len(found) + 1))
    for x in found:  # NNN_<stage>_<transform>.txt, and the header says the same
        assert re.fullmatch(rf"{x.index:03d}_{x.stage}_{x.transform}\.txt", x.path.rsplit("/", 1)[1])
    names = [x.transform for x in found]
    assert names[0] == "export_to_gm" and "fuse_add_rms_norm" in names  # disabled, still dumped
    fused = around(d, ["fuse_add_rms_norm"])["diffs"][0]
    assert fused["changed"] is False and fused["nodes_before"] == fused["nodes_after"]


def test_diff_lists_what_the_culprit_rewrote(dumps):
    d = dumps({"world_size": 2})
    rms = around(d, ["fuse_rmsnorm"])["diffs"][0]
    assert rms["transform"] == "fuse_rmsnorm" and rms["stage"] == "post_load_fusion"
    assert rms["before"].startswith(f"{int(rms['after'][:3]) - 1:03d}_")  # the dump right before it
    assert rms["added"] == {"auto_deploy.flashinfer_rms_norm.default": 5}  # 2 layers x 2 norms + the final norm
    assert rms["removed"]["aten.rsqrt.default"] == 5 and rms["removed"]["aten.pow.Tensor_Scalar"] == 5
    first = rms["rewritten"][0]
    assert first["op"] == "auto_deploy.flashinfer_rms_norm.default"
    assert {"aten.pow.Tensor_Scalar", "aten.mean.dim", "aten.rsqrt.default"} <= set(first["source_ops"])
    assert "model_layers_0_input_layernorm_weight" in first["inputs"]
    shard = around(d, stage="sharding")["diffs"]
    executor = next(x for x in shard if x["transform"] == "sharding_transform_executor")
    assert executor["added"]["auto_deploy.torch_dist_all_reduce.default"] == 4  # after o_proj and down_proj, 2 layers
    assert not any(x["changed"] for x in shard if x["transform"] != "sharding_transform_executor")


def test_parses_the_real_writers_format(tmp_path):
    text = "\n".join([
        "# Transform: fuse_rope_into_trtllm_attention", "# Stage: post_load_fusion", "# GraphModules found: 1", "",
        "", "=" * 80, "# GraphModule: (root)", "=" * 80, "",
        "%x : 2x8x128 : torch.bfloat16", "%pos : 2x8 : torch.int64",
        "%rope = auto_deploy.flashinfer_rope.default(%x : 2x8x128 : torch.bfloat16, %x : 2x8x128 : torch.bfloat16, "
        "%pos : 2x8 : torch.int64, True) : (2x8x128, 2x8x128) : (torch.bfloat16, torch.bfloat16)",
        "%getitem = <built-in function getitem>(%rope : ? : unknown, 0) : 2x8x128 : torch.bfloat16",
        "output %getitem"])
    path = tmp_path / "012_post_load_fusion_fuse_rope_into_trtllm_attention.txt"
    path.write_text(text + "\n")
    dump = parse_dump(path)
    assert (dump.index, dump.stage, dump.transform) == (12, "post_load_fusion", "fuse_rope_into_trtllm_attention")
    nodes = dump.modules["(root)"]
    assert nodes["rope"].target == "auto_deploy.flashinfer_rope.default" and nodes["rope"].inputs == ["x", "x", "pos"]
    assert nodes["getitem"].target == "<built-in function getitem>" and nodes["getitem"].inputs == ["rope"]
    assert nodes["x"].target == "placeholder"


def test_localize_command_graph_view_without_activation_capture(dumps, tmp_path, capsys):
    from harness.cli import main

    d = dumps({})
    out = tmp_path / "loc"
    rc = main(["localize", "--backend-ref", "trtllm-pt", "--backend", "trtllm-ad", "--dumps", d,
               "--transform", "fuse_silu_mul", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "layer-wise comparison is not available" in printed
    assert "graph: fuse_silu_mul" in printed and "auto_deploy.silu_and_mul.default x2" in printed
    saved = json.loads((out / "localization.json").read_text())
    assert saved["available"] is False and saved["graph"]["diffs"][0]["added"] == {"auto_deploy.silu_and_mul.default": 2}
    assert main(["localize", "--backend", "trtllm-ad", "--dumps", d]) == 2  # --dumps without --transform
    capsys.readouterr()
    # bad input: one line naming the value, the allowed values and the fix; exit 2
    assert main(["localize", "--backend", "trtllm-ad", "--dumps", d, "--transform", "fuse_rmsnrom"]) == 2
    err = capsys.readouterr().err
    assert "'fuse_rmsnrom' has no dump" in err and "fuse_rmsnorm" in err and len(err.strip().splitlines()) == 1
    assert main(["localize", "--backend", "trtllm-ad", "--dumps", str(tmp_path / "none"), "--transform", "x"]) == 2
    assert "holds no AD graph dumps" in capsys.readouterr().err
