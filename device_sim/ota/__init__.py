"""OTA: signed A/B updates, delta packages, model payloads, rollback (see updater.py)."""
