"""The load: an async streaming client, the prompts it sends, and the cross-check against vLLM bench."""
