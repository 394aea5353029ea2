"""camlab.data."""
