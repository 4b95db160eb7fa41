from ..compiler import CompileBackendRegistry, CompilerBackend


@CompileBackendRegistry.register("torch-simple")
class TorchSimpleCompiler(CompilerBackend):
    pass
