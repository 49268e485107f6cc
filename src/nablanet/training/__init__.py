"""Training: ``Sequential`` and its ``fit`` loop, the per-epoch ``History``, and callbacks."""
