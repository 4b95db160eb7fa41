"""`python -m harness fake-quant --config base.yaml -o fake_quant_debug.yaml [--model DIR] [--default-yaml PATH]`

Writes the method's Phase 4a fake-quantization YAML: the base config with every quantization
fusion that exists in the default.yaml in force (and is on) disabled; MoE fusions only for MoE
models (read from the model's config.json); a comment per key saying why. See harness/analysis/fake_quant.py.
The emulator's own keys (``fault``, ``fault_strength``, ``fault_backend``, ``engine_noise``, ``plugins``)
are left out unless the backend is one that runs them (it takes plugin transforms: the ad-emulator), so
the file can go to TensorRT-LLM as is. Warns when the model is not quantized (nothing to fake), and
prints the command to run next.
"""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from harness.commands.options import add_config_argument

    add_config_argument(p, "base AD YAML the run already uses (default: none)")
    p.add_argument("-o", "--output", default="fake_quant_debug.yaml", help="where to write the YAML "
                   "(default fake_quant_debug.yaml; '-' for stdout)")
    p.add_argument("--model", default=None, help="model directory; its config.json decides whether MoE fusions "
                   "are included")
    p.add_argument("--backend", default=None, help="backend whose default.yaml is in force (default: the "
                   "candidate of harness.backends.default_backends())")
    p.add_argument("--default-yaml", default=None, help="the AD default.yaml in force (overrides discovery)")


def catalogue_for(backend: str | None, default_yaml: str | None):
    """The knob catalogue of the default.yaml in force (``--default-yaml`` wins over the backend's)."""
    from harness.backends import default_backends, get_backend
    from harness.config import Catalogue
    from harness.errors import HarnessError

    if default_yaml:
        return Catalogue.from_yaml(default_yaml)
    name = backend or default_backends()[1]
    path = get_backend(name).default_yaml()
    if not path:
        raise HarnessError(f"backend {name!r} has no AD default.yaml; pass --default-yaml PATH "
                           "(tensorrt_llm/_torch/auto_deploy/config/default.yaml) or --backend ad-emulator")
    return Catalogue.from_yaml(path)


EMULATOR_TOP_KEYS = ("engine_noise", "plugins")
EMULATOR_TRANSFORM_KEYS = ("fault", "fault_strength", "fault_backend")


def without_emulator_keys(config: dict) -> tuple[dict, list[str]]:
    """(the config without the ad-emulator's own keys, the dotted keys removed)."""
    out = {k: v for k, v in config.items() if k not in EMULATOR_TOP_KEYS}
    removed = [k for k in config if k in EMULATOR_TOP_KEYS]
    transforms = {}
    for name, conf in (config.get("transforms") or {}).items():
        if isinstance(conf, dict):
            removed += [f"transforms.{name}.{k}" for k in conf if k in EMULATOR_TRANSFORM_KEYS]
            conf = {k: v for k, v in conf.items() if k not in EMULATOR_TRANSFORM_KEYS}
        transforms[name] = conf
    if "transforms" in config:
        out["transforms"] = transforms
    return out, removed


def run(args) -> int:
    import sys
    from pathlib import Path

    from harness.backends import capabilities, default_backends
    from harness.config import load_yaml
    from harness.config.ops import validate_transform_names
    from harness.errors import HarnessError
    from harness.analysis.fake_quant import is_moe, quant_info, render_fake_quant_yaml

    backend = args.backend or default_backends()[1]
    cat = catalogue_for(backend, args.default_yaml)
    base = load_yaml(args.config, "config") if args.config else {}
    validate_transform_names(base, cat)
    if args.model and not Path(args.model).exists():
        raise HarnessError(f"model directory {args.model!r} does not exist; pass --model with a local checkpoint "
                           "directory (its config.json says whether the model is MoE)")
    removed = []
    if not capabilities(backend).takes_plugins:  # the emulator's keys mean nothing to TensorRT-LLM
        base, removed = without_emulator_keys(base)
    text = render_fake_quant_yaml(cat, base, is_moe(args.model), args.config, args.model)
    if removed:
        text = text.replace("\n", f"\n# Left out, the ad-emulator's own keys: {', '.join(removed)}\n", 1)
    quantized = quant_info(args.model).get("quantized") if args.model else None
    if quantized is False:
        print(f"warning: {args.model} is not quantized (no quantization in hf_quant_config.json or config.json): "
              "fake-quant mode has no quantized kernel to take out; Phase 4a is for quantized checkpoints",
              file=sys.stderr)
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise HarnessError(f"cannot write {str(out)!r}: {exc.strerror}; pass -o with a writable path") from None
    print(f"wrote {out}")
    model = f" --model {args.model}" if args.model else ""
    print(f"next: python -m harness diagnose --backend {backend}{model} --config {out} --samples 200 --out "
          f"reports/fake-quant, and the same with --config {args.config or '<your base config>'} --out reports/base; "
          "then python -m harness compare reports/base/* reports/fake-quant/* (accuracy recovers: the quantized "
          "kernel is the bug; it does not: the scales or weights)")
    return 0
