"""bench: measure. Prepare INT8 W8A8 models, serve them with vLLM, drive streaming load, record
per-request timings, tokens, power and energy, and time the device's operators.

    model/      the model a benchmark serves: built locally, quantized, recorded
    server/     vLLM's server: its arguments, start, watch and stop, the stop signals
    load/       the streaming client, its prompts, the cross-check against vLLM bench
    run/        one run and a sweep of them, derived figures, telemetry, the ladder
    hardware/   which device was measured, its peaks and bandwidth, NVML
    operators/  the operator profile: the grid, the kernels as vLLM runs them, the timing
    config.py   the sweep configuration (TOML + flags)
    cli.py      `python -m bench SUBCOMMAND`

It imports core only (never calibrate or solver); docs/architecture.md has a line per file.
"""
