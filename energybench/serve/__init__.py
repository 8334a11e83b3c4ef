"""The serve phase: serving scenarios (throughput, stream, load, adaptive) and their trials."""
