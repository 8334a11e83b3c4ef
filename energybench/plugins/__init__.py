"""The registry every plug-in table is built on."""
