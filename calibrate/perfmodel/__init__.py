"""The performance model of the hardware+engine: step-time forms, the closed-loop simulation,
form selection on a ladder, the built model and `calibrate predict`."""
