"""The shared core every stage stands on: file schemas, measurement definitions, shape physics,
the GPU table, files, provenance, the paper's settings, the one error type and the CLI building blocks.
It imports no stage."""
