"""Fake of auto_deploy/llm.py: LLM(_TorchLLM) forcing backend="_autodeploy", plus a fake
InferenceOptimizer that logs one line per transform exactly in AD's format and plants the fault."""
import os
import shutil
import time

from ...llmapi.llm import _TorchLLM
from .llm_args import LlmArgs
from .utils.logger import ad_logger

__all__ = ["LLM"]

STAGES = ["factory", "export", "post_export", "pattern_matcher", "sharding", "weight_load", "post_load_fusion",
          "cache_init", "visualize", "compile"]
# a dense, unquantized single-GPU model: these transforms find nothing to match
_ZERO_MATCH = ("fp8", "fp4", "mxfp", "finegrained", "int4", "quant", "moe", "mla", "ssm", "causal_conv", "delta",
               "l2norm", "gdn", "allreduce", "bmm", "multi_stream", "mrope", "hidden_states")


def _num_matches(name, world_size):
    if any(tok in name for tok in _ZERO_MATCH):
        return 0
    return 2


def run_optimizer(args):
    """Log each transform like BaseTransform.__call__; return the fault spec if its transform ran."""
    from ..._fake import fault_spec
    from .compile import CompileBackendRegistry
    from .custom_ops import AttentionRegistry

    fault = fault_spec()
    planted = None
    dump_dir = os.environ.get("AD_DUMP_GRAPHS_DIR")
    if dump_dir:  # like utils/graph_writer.py: the directory is deleted and recreated, one file per transform
        shutil.rmtree(dump_dir, ignore_errors=True)
        os.makedirs(dump_dir)
    items = list(args.transforms.items())
    for name, conf in items:
        if "stage" not in conf or conf["stage"] not in STAGES:
            raise ValueError(f"transform {name}: invalid or missing stage {conf.get('stage')!r}")
    items.sort(key=lambda kv: STAGES.index(kv[1]["stage"]))
    known = set(_registry_names(args))
    for name, conf in items:
        if name not in known:
            raise KeyError(name)
        prefix = f"[stage={conf['stage']}, transform={name}]"
        t0 = time.time()
        enabled = bool(conf.get("enabled", True))
        if enabled:
            if name == "compile_model":
                CompileBackendRegistry.get(conf.get("backend"))
            if name == "insert_cached_attention":
                AttentionRegistry.get(conf.get("backend"))
            n = _num_matches(name, args.world_size)
            if conf["stage"] == "sharding" and args.world_size < 2:
                ad_logger.info(prefix, "Skipping sharding for single device")
                n = 0
            ad_logger.info(prefix, f"enabled=True, num_matches={n}, is_clean={n == 0}, has_valid_shapes=False")
            if fault and fault.get("transform") == name and n > 0:
                planted = fault
        else:
            ad_logger.info(prefix, "enabled=False, skipped=True, is_clean=True, has_valid_shapes=False")
        if dump_dir:
            with open(os.path.join(dump_dir, f"{len(os.listdir(dump_dir)) + 1:03d}_{conf['stage']}_{name}.txt"), "w") as f:
                f.write(f"# fake SSA dump after {name}\n%x = placeholder() : [1, 8] : torch.int64\n")
        ad_logger.info(prefix, f"elapsed time: total={time.time() - t0:.3f}s, pre_cleanup=0.000s, apply=0.000s, "
                               "post_cleanup=0.000s")
    return planted


def _registry_names(args):
    import yaml
    from pathlib import Path

    default = Path(__file__).resolve().parent / "config" / "default.yaml"
    return list((yaml.safe_load(default.read_text()) or {}).get("transforms", {}))


class LLM(_TorchLLM):
    """LLM class for running an LLM model using the (fake) AutoDeploy backend."""

    args_cls = LlmArgs

    def __init__(self, *args, **kwargs):
        kwargs["backend"] = "_autodeploy"
        super().__init__(*args, **kwargs)

    def _make_args(self, **kwargs):
        return LlmArgs.from_kwargs(**kwargs)

    def _fault(self):
        return run_optimizer(self.args)
