"""One run and a sweep of them: specs to run directories, derived figures, telemetry, the ladder."""
