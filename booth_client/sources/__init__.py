"""Media sources for the kiosk. `synthetic` needs no hardware (demo, tests, soak runs)."""
