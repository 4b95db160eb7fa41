"""`python -m harness localize`: where, inside the culprit, does the candidate first leave the reference?
(docs/method.md, "Phase 4"; bisect runs the same step after a confirmed culprit.)

Loads the reference (``--backend-ref``, optionally with ``--reference-config``), the candidate
(``--backend`` with ``--config``, typically the minimal config plus the culprit) and a reference-like
control of the candidate backend (``--control``: by default the candidate config stripped to minimal),
runs the same prompt tokens through all three with activations captured at module boundaries, and
reports per module the propagated and isolated error, the noise band measured on the control, and the
first divergence. A quantized candidate also gets the weight check (Phase 4a step 2). ``--dumps DIR
--transform NAME`` adds the diff of real AutoDeploy's graph dumps around a transform, and works for
backends without activation capture (trtllm-ad).

Writes ``<out>/localization.json`` (the ``localization`` section of bisect's summary.json, schema in
harness/bisect/report/SCHEMA.md) and ``localization.png``. Runs in this process. Exit 0 when it ran,
2 on bad input.
"""
from __future__ import annotations

import argparse
import sys

from harness.errors import HarnessError

DEFAULT_PROMPTS = 4
EPILOG = ("Example: python -m harness localize --config configs/demo/ad_demo_subtle.yaml  |  exit 0 when it ran, "
          "2 on bad input")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from harness.commands.prompts import add_prompt_arguments, add_task_arguments
    from harness.paths import DEMO_MODEL

    p.epilog = EPILOG
    p.add_argument("--model", default=str(DEMO_MODEL), help="model checkpoint directory (default: the demo model)")
    p.add_argument("--backend-ref", default=None, help="reference backend (default hf without tensorrt_llm)")
    p.add_argument("--backend", default=None, help="candidate backend (default ad-emulator without tensorrt_llm)")
    p.add_argument("--config", default=None, help="candidate AD YAML (default: the demo config for the demo model on "
                   "the emulator)")
    p.add_argument("--reference-config", default=None, help="AD YAML for a reference backend that takes one (e.g. "
                   "the minimal config, with --backend-ref ad-emulator)")
    p.add_argument("--control", default="minimal", metavar="minimal|none|FILE", help="the reference-like control the "
                   "noise band is measured on: minimal (the candidate config stripped to minimal, default), none, or an "
                   "AD YAML of the candidate backend")
    p.add_argument("--default-yaml", default=None, help="the AD default.yaml in force (overrides discovery)")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE", help="plugin transform file (repeatable)")
    add_task_arguments(p, default_samples=DEFAULT_PROMPTS)
    add_prompt_arguments(p)
    p.add_argument("--sample-id", action="append", default=[], metavar="ID", help="compare on this sample "
                   "(repeatable; default the first --samples of the task)")
    p.add_argument("--unquantized-model", default=None, help="unquantized model for the weight check (default: the "
                   "reference's own weights)")
    p.add_argument("--dumps", default=None, metavar="DIR", help="AD graph dumps (AD_DUMP_GRAPHS_DIR) to diff around "
                   "--transform")
    p.add_argument("--transform", action="append", default=[], metavar="NAME", help="transform whose dump is diffed "
                   "against the one before it (repeatable; with --dumps)")
    p.add_argument("--out", default=None, help="output directory (default reports/localize-<hash>)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args) -> int:
    if args.samples is not None and args.samples <= 0:
        raise HarnessError(f"--samples must be a positive number of prompts, got {args.samples}; pass e.g. --samples 4")
    if args.transform and not args.dumps:
        raise HarnessError("--transform needs --dumps DIR (the AD_DUMP_GRAPHS_DIR of a trtllm-ad run)")
    if args.dumps and not args.transform:
        raise HarnessError(f"--dumps {args.dumps!r} needs --transform NAME: the transform whose graph rewrite to show")
    if args.dumps:
        _check_dumps(args.dumps, args.transform)
    backend_ref, backend = _backends(args)
    why = _no_capture(backend_ref, backend)
    if why and not args.dumps:
        raise HarnessError(f"{why}. Pass --dumps DIR --transform NAME for the graph view, or localize with "
                           "--backend-ref hf --backend ad-emulator")
    if why:  # the graph view alone: no model is loaded
        result, out_dir = {"ran": False, "available": False, "note": why}, _out_dir(args, {"dumps": args.dumps})
    else:
        request = build_request(args, backend_ref, backend)
        out_dir = _out_dir(args, request)
        request["plot"] = str(out_dir / "localization.png")
        from harness.analysis.localize.job import run_request

        result = run_request(request)
    if args.dumps:
        from harness.analysis.localize.graph_diff import around

        result["graph"] = {"available": True, **around(args.dumps, list(args.transform))}
    return report(result, out_dir, args)


def _check_dumps(dump_dir: str, transforms: list[str]) -> None:
    """Bad input before any model loads: no dumps there, or a transform that has no dump."""
    from harness.analysis.localize.graph_diff import list_dumps

    dumps = list_dumps(dump_dir)
    if not dumps:
        raise HarnessError(f"--dumps {dump_dir!r} holds no AD graph dumps (NNN_<stage>_<transform>.txt); pass the "
                           "AD_DUMP_GRAPHS_DIR of a trtllm-ad run (bisect --dump-graphs DIR writes one per evaluation "
                           "under DIR)")
    names = list(dict.fromkeys(d.transform for d in dumps))
    unknown = [t for t in transforms if t not in names]
    if unknown:
        raise HarnessError(f"--transform {unknown[0]!r} has no dump in {dump_dir}; dumped transforms: "
                           f"{', '.join(names)}. Pass one of these")


def _backends(args) -> tuple[str, str]:
    from harness.backends import default_backends, get_backend

    backend_ref = args.backend_ref or default_backends()[0]
    backend = args.backend or default_backends()[1]
    get_backend(backend_ref)  # an unknown name: one line with the valid ones
    if not get_backend(backend).takes_ad_config:
        raise HarnessError(f"--backend {backend!r} takes no AD config, so there is no culprit to localize in it; pass "
                           "--backend ad-emulator (or trtllm-ad with --dumps)")
    return backend_ref, backend


def _no_capture(*backends: str) -> str | None:
    from harness.backends import capabilities

    which = [b for b in backends if not capabilities(b).supports_activation_capture]
    return (f"{', '.join(which)} cannot capture activations at module boundaries (the model does not run in this "
            "process), so the layer-wise comparison is not available") if which else None


def _out_dir(args, identity: dict):
    from pathlib import Path

    from harness.bisect.inputs import check_out_dir
    from harness.jsonio import canonical_json, sha

    return check_out_dir(Path(args.out) if args.out else Path("reports") / f"localize-{sha(canonical_json(identity), 8)}")


def build_request(args, backend_ref: str, backend: str) -> dict:
    """The localization request; every input checked first."""
    from harness.backends import get_backend
    from harness.bisect.inputs import check_dataset, check_model, load_config
    from harness.commands.bisect import demo_config_default

    model = check_model(args.model)
    args.config = demo_config_default(args)
    loaded = load_config(args, get_backend(backend), backend)
    dataset = check_dataset(args)
    side = _sides(args, model, backend_ref, backend, loaded)
    prompts, truncate = _prompts(args, model, backend_ref, dataset)
    weights = None
    if args.unquantized_model:
        weights = {"backend": backend_ref, "model": check_model(args.unquantized_model, "--unquantized-model"),
                   "config": {}, "plugins": [], "label": f"unquantized {args.unquantized_model}"}
    return {**side, "prompts": prompts, "truncate_prompt_tokens": truncate, "weights_reference": weights,
            "title": f"{side['candidate']['label']} vs {side['reference']['label']}"}


def _sides(args, model: str, backend_ref: str, backend: str, loaded) -> dict:
    from harness.backends import get_backend
    from harness.bisect.plan import build_plan
    from harness.config import load_yaml

    ref_cfg = load_yaml(args.reference_config, "reference config") if args.reference_config else {}
    if ref_cfg and not get_backend(backend_ref).takes_ad_config:
        raise HarnessError(f"--reference-config: the reference backend {backend_ref!r} takes no AD config; drop "
                           "--reference-config or pass --backend-ref ad-emulator")
    if args.control == "minimal":
        control, label = build_plan(loaded.catalogue, loaded.user).config(loaded.user, ()), "the minimal config"
    elif args.control == "none":
        control, label = None, None
    else:
        control, label = load_yaml(args.control, "control config"), f"control {args.control}"
    plugins = list(loaded.plugins)
    return {"reference": {"backend": backend_ref, "model": model, "config": ref_cfg, "plugins": plugins if ref_cfg else [],
                          "label": f"reference {backend_ref}" + (f" ({args.reference_config})" if ref_cfg else "")},
            "candidate": {"backend": backend, "model": model, "config": loaded.user, "plugins": plugins,
                          "label": f"candidate {args.config or '(default config)'}"},
            "control": {"backend": backend, "model": model, "config": control, "plugins": plugins, "label": label}
            if control is not None else None}


def _prompts(args, model: str, backend_ref: str, dataset: str) -> tuple[list[dict], int | None]:
    """(the prompts, the engines' prompt-token limit for the task)."""
    from harness.bisect.inputs import prompt_options
    from harness.evaluation.spec import EvalSpec, build_samples, sampling_for

    spec = EvalSpec(backend=backend_ref, model=model, task=args.task, dataset=dataset,
                    samples=len(args.sample_id) or args.samples or DEFAULT_PROMPTS, seed=args.seed, prompt_options=prompt_options(args, model),
                    sample_ids=list(args.sample_id) or None)
    task, samples = build_samples(spec)
    missing = [i for i in args.sample_id if i not in {s.id for s in samples}]
    if missing:
        raise HarnessError(f"--sample-id {missing[0]!r} is not a sample of {args.task} in {dataset}; list the ids with "
                           f"python -m harness prompts --task {args.task}")
    samples = samples[:len(args.sample_id) or args.samples or DEFAULT_PROMPTS]
    return [{"id": s.id, "text": s.prompt} for s in samples], sampling_for(task, spec).truncate_prompt_tokens


def report(result: dict, out_dir, args) -> int:
    import shutil

    from harness.comparison.verdict import json_safe
    from harness.jsonio import write_json_atomic

    if result.get("plot"):
        target = out_dir / "localization.png"
        if str(result["plot"]) != str(target):
            shutil.move(result["plot"], target)
        result["plot"] = "localization.png"
    safe = json_safe(result)
    write_json_atomic(out_dir / "localization.json", safe)
    if args.json:
        import json

        print(json.dumps(safe, indent=2))
        return 0
    for line in summary_lines(result):
        print(line)
    print(f"written: {out_dir / 'localization.json'}" + (f", {out_dir / 'localization.png'}" if result.get("plot") else ""))
    sys.stdout.flush()
    return 0


def summary_lines(result: dict) -> list[str]:
    lines = []
    if result.get("ran"):
        lines.append(result["finding"])
        for row in result.get("modules") or []:
            if row.get("exceeds_isolated"):
                lines.append(f"  leaves the band (isolated): {row['module']} relative error "
                             f"{row['isolated']['rel_err']:.3g} > band {row['band_isolated']:.3g}")
        weights = result.get("weights") or {}
        if weights.get("ran"):
            lines.append(f"weights: {len(weights['flagged'])} of {len(weights['layers'])} linear layers flagged"
                         + (f", first {weights['flagged'][0]}" if weights["flagged"] else ""))
    else:
        lines.append(result.get("error") or result.get("note") or "layer-wise comparison not run")
    for diff in (result.get("graph") or {}).get("diffs") or []:
        added = ", ".join(f"{op} x{n}" for op, n in diff["added"].items()) or "nothing"
        lines.append(f"graph: {diff['transform']} ({diff['before']} -> {diff['after']}) removed "
                     f"{sum(diff['removed'].values())} node(s), added {added}")
    if (result.get("graph") or {}).get("note"):
        lines.append(f"graph: {result['graph']['note']}")
    return lines
