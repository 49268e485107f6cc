"""The math: layers, activations, losses, initialisers, optimizers, schedules, data preparation and
the gradient check. NumPy only — no training loop, no files, no plots."""
