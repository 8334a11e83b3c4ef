"""The run records and the store: typed records, how they are checked, written and read."""
