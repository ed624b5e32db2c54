"""Eq. 3 / Eq. 6 of Sardana et al. 2024 solved exactly, with the costs it takes (paper or profile),
the N-dependent serving cost, demand and data limits, and `solver optimize`."""
