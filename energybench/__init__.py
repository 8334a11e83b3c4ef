"""energybench: full-cycle (train + compress + serve) energy benchmark for vision models."""

__version__ = "0.2.0"
