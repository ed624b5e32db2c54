"""Operator profile: the kernels a decoder step runs, each timed alone on this device.

Why. A decode step of a W8A8 Llama-style model is a fixed sequence of kernels per layer (the QKV
GEMM, rotary, attention over the KV cache, the O GEMM, two RMSNorms, the gate_up GEMM, SiLU·mul, the
down GEMM) plus the final norm, the LM head and the sampler. Each kernel's time depends on few
numbers (rows M and weight shape K×N for a GEMM; batch, context and heads for attention), and the
step's time is, to first order, their sum plus a fixed per-step cost of the engine. A table of
kernel times over a grid of shapes therefore predicts step times for model shapes and batches that
were never served, and shows where the time goes.

Physics the grid must capture:
  * a GEMM at small M streams its weights (K·N bytes for INT8): bandwidth-bound, nearly flat in M;
    at large M it is compute-bound (2·M·K·N operations);
  * on CPU, vLLM's INT8 GEMMs process rows in blocks (the oneDNN path in blocks of 4, each leftover
    row costing about a single-row pass; the AMX kernel in tiles): time is not monotone in M, so
    the grid holds points either side of every block boundary and interpolation keeps them;
  * decode attention reads 2·context·kv_heads·head_dim KV elements per sequence: linear in
    batch·context; prefill attention is quadratic in the prompt (causal pairs);
  * norms, rotary, SiLU·mul and the sampler are memory-bound element-wise passes, linear in tokens.

Modules: grid (the shapes, as data), kernels (how each operator is built and called: vLLM's own
CPU ops, torch stand-ins on CUDA), measure (timing → OperatorProfile), schema (the JSON file),
interpolate (time at any shape inside the grid), compose (a step's time from the table), cli.
"""
