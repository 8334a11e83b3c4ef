"""Orchestration: runner, placement, resume, preflight, checkpoints, executors, run lock."""
