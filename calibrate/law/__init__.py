"""The loss law L(N, D) (Eq. 4): the formula, its fit, and `calibrate law`."""
