"""camlab.train."""
