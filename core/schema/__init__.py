"""What crosses the disk: one pydantic model per file, strict, versioned (base, run, prepared,
hardware, profile, perfmodel, law)."""
