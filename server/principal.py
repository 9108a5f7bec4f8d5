"""Who is on the other end of a request or socket, once authenticated."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class AccountRole(StrEnum):
    BOOTH = "booth"
    CSO = "cso"
    SUPERVISOR = "supervisor"
    OPERATOR = "operator"
    AUDITOR = "auditor"  # reads records and documents, full NIKs; changes nothing


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str  # booth id or user id; the peer id on sockets
    role: AccountRole
    display_name: str
    branch: str
    # CSO dispatch profile (empty for other roles): branches served ("*" = all), skills.
    pools: frozenset[str] = field(default_factory=frozenset)
    skills: frozenset[str] = field(default_factory=frozenset)
    capacity: int = 6
    # Unix time the access token behind this principal expires (None: not from a token).
    # Token metadata, not identity: left out of ==, so a re-authenticated socket's
    # principal still equals the one it had.
    expires_at: float | None = field(default=None, compare=False)
