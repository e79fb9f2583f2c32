"""The TensorRT engine builder: strongly typed engines from an artifact's ONNX, on request."""
