"""Test plugin without a TRANSFORMS table."""


def some_function(model, options, context):
    return 0
