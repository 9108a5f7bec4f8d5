"""How an upload shares the branch's uplink with the call.

The uploader (`booth_client/upload.py`) asks a `Pacer` before each piece it sends; the
kiosk's implementation (`booth_client/uplink.py`) lets through what the uplink has left
after the call's current bitrate, so the participant's voice keeps its share. Without a
pacer an upload goes as fast as TCP lets it.
"""

from __future__ import annotations

from typing import Protocol


class Pacer(Protocol):
    async def pace(self, nbytes: int) -> None:
        """Return once `nbytes` more may be sent."""
        ...
