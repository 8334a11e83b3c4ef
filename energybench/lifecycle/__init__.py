"""The lifecycle: train, compress, serve and evaluate each entry, inside measurement windows."""
