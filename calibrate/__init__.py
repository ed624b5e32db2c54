"""calibrate: measured runs -> per-hardware profiles; training runs -> loss-law fits.

One subpackage per concern (the stage imports core only: it reads bench's files, never bench's code):

    runs/        run directories as evidence: load and screen, other tools' results, the steady window,
                 engine steps from per-token timestamps
    profile/     the calibration profile: the stage function (make.py), per-token costs, decode curve,
                 SLO point, a ladder's profile, `calibrate profile`
    perfmodel/   the performance model of hardware + engine: step-time forms, the closed-loop
                 simulation, form selection on a ladder, the stored model, `calibrate predict`
    operators/   the device's measured operators composed into engine steps of any shape
    law/         the loss law L(N, D) (Eq. 1/4), its fit and `calibrate law`
    cli.py       `python -m calibrate SUBCOMMAND`: the list of subcommands

docs/architecture.md has a line per file.
"""
