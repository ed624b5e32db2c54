"""A calibration profile: per-token costs, the decode curve, the SLO point, a ladder's profile."""
