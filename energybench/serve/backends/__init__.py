"""Serving backends: the runtime an entry's final model is served on (eager, compile, ORT, ...)."""
