"""`python -m harness fake-quant --config base.yaml -o fake_quant_debug.yaml [--model DIR] [--default-yaml PATH]`

Writes the method's Phase 4a fake-quantization YAML: the base config with every quantization
fusion that exists in the default.yaml in force (and is on) disabled; MoE fusions only for MoE
models (read from the model's config.json); a comment per key saying why. See harness/analysis/fake_quant.py.
"""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="base AD YAML the run already uses (default: none)")
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


def run(args) -> int:
    import sys
    from pathlib import Path

    from harness.config import load_yaml
    from harness.config.ops import validate_transform_names
    from harness.errors import HarnessError
    from harness.analysis.fake_quant import is_moe, render_fake_quant_yaml

    cat = catalogue_for(args.backend, args.default_yaml)
    base = load_yaml(args.config, "config") if args.config else {}
    validate_transform_names(base, cat)
    if args.model and not Path(args.model).exists():
        raise HarnessError(f"model directory {args.model!r} does not exist; pass --model with a local checkpoint "
                           "directory (its config.json says whether the model is MoE)")
    text = render_fake_quant_yaml(cat, base, is_moe(args.model), args.config, args.model)
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
    return 0
