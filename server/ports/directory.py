"""MemberDirectory: look a member up by NIK and KPJ (the agency's membership data).

Two adapters (server/adapters/directory.py): the local one reads the membership table that
`loket claims import` fills; the HTTP one asks the agency's membership service, bounded by
a timeout, retries and a circuit breaker. Either answers within its time or raises
`DirectoryUnavailable`: a check-in never waits on it for longer.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from server.domain.members import MemberRecord


class Unavailability(StrEnum):
    TIMEOUT = "timeout"  # no answer within the time allowed
    FAILED = "failed"  # the service answered with an error (5xx, refused connection)
    MALFORMED = "malformed"  # it answered something that is not the documented contract
    CIRCUIT_OPEN = "circuit_open"  # it failed repeatedly: not asked again for a while
    REFUSED = "refused"  # it refused us (4xx other than 404): a configuration problem


class DirectoryUnavailable(Exception):
    """No answer from the directory: `reason` for programs, the message for people (it
    says what happened and, where it helps, what to do)."""

    def __init__(self, reason: Unavailability, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class MemberDirectory(Protocol):
    name: str  # "local" or the service's address, for notes and logs

    async def lookup(self, nik: str, kpj: str) -> MemberRecord | None:
        """The member with this NIK and KPJ (source "directory"), None when the directory
        knows no such member, or DirectoryUnavailable."""
        ...

    async def close(self) -> None: ...
