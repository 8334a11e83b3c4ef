"""The compress phase: re-parameterisation, pruning, quantisation and distillation methods."""
