"""Protocol version spoken on every Loket socket.

Bump it when a change is not backwards compatible; peers that disagree get a typed
`unsupported_version` error naming both versions, so an old kiosk says what to update.
"""

PROTOCOL_VERSION = 1
