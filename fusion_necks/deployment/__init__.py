"""Exporting the fusion models to ONNX and checking the export with onnxruntime."""
