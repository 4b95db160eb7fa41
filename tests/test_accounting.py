"""Every key of a config gets APPLIED / DISABLED / SKIPPED / FAILED / UNKNOWN with its evidence, as TensorRT-LLM's
own config-to-log check does (harness/backends/accounting.py)."""
from harness.backends.accounting import account_config, counts, flatten, render_rows

RECORDS = [
    {"transform": "fuse_rmsnorm", "status": "applied", "num_matches": 4, "evidence": "4 matches"},
    {"transform": "fuse_fp8_linear", "status": "skipped", "num_matches": 0, "evidence": "0 matches: nothing"},
    {"transform": "fuse_gemms", "status": "disabled", "evidence": "[stage=post_load_fusion, transform=fuse_gemms] [SUMMARY] disabled"},
    {"transform": "fuse_moe", "status": "failed", "evidence": "Transform fuse_moe failed: boom"},
    {"transform": "compile_model", "status": "applied", "num_matches": 1, "evidence": "1 match"},
]


def test_flatten_like_the_yaml():
    assert flatten({"a": 1, "kv_cache_config": {"dtype": "fp8"}, "transforms": {"x": {}, "y": {"enabled": False}}}) == [
        ("a", 1), ("kv_cache_config.dtype", "fp8"), ("transforms.x.enabled", True), ("transforms.y.enabled", False)]


def test_each_key_one_status_with_evidence():
    info = {"transforms": RECORDS, "settings": {"compile_backend": "torch-cudagraph", "world_size": 1},
            "engine_args": {"max_seq_len": 2048},
            "transform_configs": {"compile_model": {"cuda_graph_batch_sizes": [1, 2, 4, 8], "piecewise_enabled": True}},
            "plugins": ["p.py"]}
    config = {"compile_backend": "torch-simple", "world_size": 1, "max_seq_len": 2048, "enable_chunked_prefill": True,
              "plugins": ["p.py"],
              "transforms": {"fuse_rmsnorm": {"enabled": True, "rmsnorm_backend": "flashinfer"},
                             "fuse_fp8_linear": {}, "fuse_gemms": {"enabled": False}, "fuse_moe": {"enabled": True},
                             "fuse_silu_mul": {"enabled": True}, "fuse_rope": {"enabled": False},
                             "compile_model": {"cuda_graph_batch_sizes": [1, 2], "piecewise_enabled": True}}}
    rows = {r["key"]: r for r in account_config(config, info)}
    status = {k: r["status"] for k, r in rows.items()}
    assert status == {
        "compile_backend": "FAILED", "world_size": "APPLIED", "max_seq_len": "APPLIED",
        "enable_chunked_prefill": "UNKNOWN", "plugins": "APPLIED",
        "transforms.fuse_rmsnorm.enabled": "APPLIED", "transforms.fuse_rmsnorm.rmsnorm_backend": "APPLIED",
        "transforms.fuse_fp8_linear.enabled": "SKIPPED", "transforms.fuse_gemms.enabled": "DISABLED",
        "transforms.fuse_moe.enabled": "FAILED", "transforms.fuse_silu_mul.enabled": "UNKNOWN",
        "transforms.fuse_rope.enabled": "UNKNOWN",
        "transforms.compile_model.cuda_graph_batch_sizes": "FAILED", "transforms.compile_model.piecewise_enabled": "APPLIED"}
    assert "requested 'torch-simple', the engine resolved 'torch-cudagraph'" in rows["compile_backend"]["evidence"]
    assert "validated config has compile_model.cuda_graph_batch_sizes=[1, 2, 4, 8]" in \
        rows["transforms.compile_model.cuda_graph_batch_sizes"]["evidence"]
    assert rows["transforms.fuse_moe.enabled"]["evidence"] == "Transform fuse_moe failed: boom"
    assert counts(list(rows.values())) == {"APPLIED": 6, "SKIPPED": 1, "DISABLED": 1, "FAILED": 3, "UNKNOWN": 3}
    table = render_rows(list(rows.values()))
    assert table[0] == "| config | result | evidence |"
    assert "| `transforms.fuse_gemms.enabled = False` | DISABLED | [stage=post_load_fusion, transform=fuse_gemms] [SUMMARY] disabled |" in table


def test_disabled_requested_but_applied_is_failed_and_nothing_captured_is_unknown():
    rows = account_config({"transforms": {"fuse_rmsnorm": {"enabled": False}}}, {"transforms": RECORDS})
    assert rows[0]["status"] == "FAILED" and "requested enabled: false, but the engine ran it" in rows[0]["evidence"]
    rows = account_config({"transforms": {"fuse_rmsnorm": {"enabled": True}}}, {"transforms": []})
    assert rows[0] == {**rows[0], "status": "UNKNOWN", "evidence": "no per-transform records were captured"}
