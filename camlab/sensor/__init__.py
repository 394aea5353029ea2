"""camlab.sensor."""
