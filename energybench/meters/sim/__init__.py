"""Simulated hardware for tests and ``--simulate``: fake pynvml, power, clock, RAPL tree, profiles.

Production meters never import this package; only ``--simulate`` wiring (the meter factory,
placement) does.
"""
