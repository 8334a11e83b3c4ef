"""Reports and exports, built only from the run store."""
