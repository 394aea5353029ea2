"""3A for the camera: auto exposure (ae), AWB statistics (awb_stats) and the day/night IR-cut controller (daynight)."""
