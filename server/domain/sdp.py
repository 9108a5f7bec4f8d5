"""What the server reads from the SDP it relays (it never changes it)."""

from __future__ import annotations

import re

_FINGERPRINT = re.compile(r"^a=fingerprint:(\S+) ([0-9A-Fa-f:]+)\s*$", re.MULTILINE)


def dtls_fingerprints(sdp: str) -> tuple[str, ...]:
    """The DTLS certificate fingerprints an end announced, e.g. ("sha-256 AB:CD:...",).

    Recorded with each session so the audit can later show which certificates the two
    ends used: whoever controls signaling could otherwise sit in the middle unnoticed.
    """
    seen: dict[str, None] = {}
    for algo, value in _FINGERPRINT.findall(sdp):
        seen[f"{algo.lower()} {value.upper()}"] = None
    return tuple(seen)
