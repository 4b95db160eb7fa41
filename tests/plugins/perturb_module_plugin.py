"""Test plugin: a fault confined to one named module, for the localization tests.

``perturb_module: {enabled: true, target: model.layers.1.mlp.down_proj, scale: 1.05}`` multiplies that
module's weight by ``scale`` (a projection or a norm); ``{target: ..., attr: dequant, value: none}`` sets an
attribute instead (e.g. one FP8 kernel that drops its scale)."""
import torch


def perturb_module(model, options, context):
    module = model.get_submodule(str(options["target"]))
    if options.get("attr"):
        setattr(module, str(options["attr"]), options.get("value"))
        return 1
    with torch.no_grad():
        module.weight.mul_(float(options.get("scale", 1.05)))
    return 1


TRANSFORMS = {"perturb_module": perturb_module}
DEFAULTS = {"perturb_module": {"stage": "post_load_fusion", "enabled": False}}
CATEGORIES = {"perturb_module": "fusion"}
