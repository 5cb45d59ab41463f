"""Export: the fused inference form of the model and its ONNX graphs (FP32, strongly typed FP16)."""
