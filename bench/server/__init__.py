"""vLLM's OpenAI-compatible server: its arguments, start, watch and stop, and the stop signals."""
