"""Documents read by machine: the KTP, the KPJ card and the bank book's fields, read offline
from the kiosk's rectified pictures and compared with the member record. Advice for the
officer, never a decision. Imports neither `server` nor `booth_client`, so the server and
the `loket capture read` command share it."""
