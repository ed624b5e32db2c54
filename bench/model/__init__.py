"""The model a benchmark serves: build a small Llama locally, quantize to INT8 W8A8, record it."""
