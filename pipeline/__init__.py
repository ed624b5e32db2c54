"""The whole chain on top of the stages: prepare -> sweep -> calibrate -> report, by function calls."""
