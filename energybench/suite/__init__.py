"""Suites: the typed schema and the YAML loader with located errors."""

from energybench.suite.load import LoadedSuite, SuiteError, apply_override, load_suite
from energybench.suite.schema import SCHEMA_VERSION, Entry, Suite

__all__ = [
    "SCHEMA_VERSION",
    "Entry",
    "LoadedSuite",
    "Suite",
    "SuiteError",
    "apply_override",
    "load_suite",
]
