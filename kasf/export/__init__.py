"""Export: the file artifact and its metadata, the fused inference form of the model, and its ONNX
graphs (FP32, strongly typed FP16) and AOTInductor packages."""
