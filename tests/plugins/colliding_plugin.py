"""Test plugin whose transform name collides with a built-in."""


def fuse_rmsnorm(model, options, context):
    return 0


TRANSFORMS = {"fuse_rmsnorm": fuse_rmsnorm}
