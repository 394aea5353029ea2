"""camlab.deploy."""
