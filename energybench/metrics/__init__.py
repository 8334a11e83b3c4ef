"""Metrics computed from the run store: quality, latency statistics, full-cycle energy."""
