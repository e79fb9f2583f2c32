"""Option values the CLI lists without importing torch (``pomexport --help`` stays fast)."""

SAMPLERS = ("euler", "heun")
# torch runs a model (name, preset or weights); the ort* backends run a built artifact:
# ort = ONNX Runtime CPU EP, ort-cuda = CUDA EP, ort-trt = TensorRT EP (runtime/providers.py);
# trt = TensorRT itself, the artifact's engine (runtime/trt_backend.py).
BACKENDS = ("torch", "ort", "ort-cuda", "ort-trt", "trt")
ORT_BACKENDS = ("ort", "ort-cuda", "ort-trt")
TRT_BACKEND = "trt"
ARTIFACT_BACKENDS = (*ORT_BACKENDS, TRT_BACKEND)
DEVICES = ("auto", "cpu", "cuda")
