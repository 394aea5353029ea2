"""camlab.contract."""
