from ..compiler import CompileBackendRegistry, CompilerBackend


@CompileBackendRegistry.register("torch-opt")
class TorchOptCompiler(CompilerBackend):
    pass
