"""camlab.contract: what training/export and the camera (device_sim) share, numpy + jsonschema + stdlib only.

``manifest`` holds the export bundle's versioned JSON Schema, loader and sha256 check (see exports/README.md).
"""
