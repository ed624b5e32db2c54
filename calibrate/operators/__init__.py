"""The device's measured operators (results/hardware/operators/<hardware>.json) composed into engine
steps of any model shape: interpolation between grid points, then a step's sum over layers."""
