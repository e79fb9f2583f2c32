"""Option values the CLI lists without importing torch (``pomexport --help`` stays fast)."""

SAMPLERS = ("euler", "heun")
BACKENDS = ("torch",)  # the ONNX Runtime and TensorRT backends add their names when they land
DEVICES = ("auto", "cpu", "cuda")
