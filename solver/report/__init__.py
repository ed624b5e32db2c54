"""The sizing report: its inputs solved once, one section per concern, renderers, plots, writing."""
