"""Test plugin: a transform that raises while applying."""


def explode(model, options, context):
    raise RuntimeError("boom: shape mismatch in my rewrite")


TRANSFORMS = {"explode": explode}
