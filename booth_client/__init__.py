"""The booth kiosk: an aiortc peer that checks in, answers the CSO, and sends media."""
