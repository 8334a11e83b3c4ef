"""The train phase: the training loop and distributed (DDP) training."""
