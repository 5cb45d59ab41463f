"""Engines: one interface (load, infer, metadata, warm-up, close) over several backends."""
