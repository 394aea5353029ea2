"""camlab.eval."""
