"""Serving: a Triton Inference Server model repository from an engine or a kasf ONNX graph."""
