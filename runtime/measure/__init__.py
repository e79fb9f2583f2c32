"""Measurement of a running artifact: verify, layerwise, compare, bench, soak, plots, plan."""
