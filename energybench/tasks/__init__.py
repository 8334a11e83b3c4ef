"""Task adaptors: what a batch, the loss, one served item and quality mean for each task."""
