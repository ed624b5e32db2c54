"""The device a run measured: NVML, datasheet or measured peaks, and the cache of measurements."""
