"""camlab.models."""
