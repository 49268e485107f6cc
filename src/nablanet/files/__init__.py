"""Files: atomic writes, safe model files (``save``/``load``) and training checkpoints."""
