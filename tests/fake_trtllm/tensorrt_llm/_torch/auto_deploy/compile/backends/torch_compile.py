from ..compiler import CompileBackendRegistry, CompilerBackend


@CompileBackendRegistry.register("torch-compile")
class TorchCompileCompiler(CompilerBackend):
    pass
