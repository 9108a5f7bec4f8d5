"""Value types of the dispatcher: configuration, inputs, decisions, errors and snapshots.

Everything here is a frozen, slotted dataclass so values can be shared between the
dispatcher and the async server without defensive copies, and serialised with
`dataclasses.asdict` for the supervisor view.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

BoothState = Literal["waiting", "reserved", "in_service"]
CsoState = Literal["active", "paused", "lost"]
LapseReason = Literal["declined", "expired", "cso_lost"]

ANY_BRANCH = "*"
"""A CSO whose pools contain this serves every branch."""

MIN_CAPACITY = 1
MAX_CAPACITY = 6


def _as_str_set(value: Iterable[str], field: str) -> frozenset[str]:
    # A bare str is iterable too; turning "lang:id" into its letters is never what was meant.
    if isinstance(value, str):
        raise TypeError(f"{field} must be a set of strings, not a str")
    items = frozenset(value)
    if not all(isinstance(item, str) and item for item in items):
        raise TypeError(f"{field} must contain non-empty strings")
    return items


def _require_id(value: object, field: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field} must be a non-empty string")


# --------------------------------------------------------------------------- config / inputs


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    """Timing and estimator knobs. All durations are seconds."""

    reservation_timeout: float = 15.0
    grace_period: float = 30.0
    decline_cooldown: float = 60.0
    default_service_time: float = 300.0
    service_time_window: int = 50

    def __post_init__(self) -> None:
        for name in (
            "reservation_timeout",
            "grace_period",
            "decline_cooldown",
            "default_service_time",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        if isinstance(self.service_time_window, bool) or self.service_time_window < 1:
            raise ValueError("service_time_window must be >= 1")


@dataclass(frozen=True, slots=True)
class CsoProfile:
    """Who a CSO is and what they can take. `pools` lists branch codes, or "*" for all."""

    cso_id: str
    capacity: int
    branch: str
    pools: frozenset[str]
    skills: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        _require_id(self.cso_id, "cso_id")
        _require_id(self.branch, "branch")
        # bool is an int subclass; capacity=True is a bug, not 1.
        if (
            not isinstance(self.capacity, int)
            or isinstance(self.capacity, bool)
            or not MIN_CAPACITY <= self.capacity <= MAX_CAPACITY
        ):
            raise ValueError(f"capacity must be an int in {MIN_CAPACITY}..{MAX_CAPACITY}")
        object.__setattr__(self, "pools", _as_str_set(self.pools, "pools"))
        object.__setattr__(self, "skills", _as_str_set(self.skills, "skills"))
        if not self.pools:
            raise ValueError("pools must name at least one branch (or '*')")

    def serves(self, branch: str, needs: frozenset[str]) -> bool:
        """True if this CSO may be offered a booth of `branch` needing `needs`."""
        return (ANY_BRANCH in self.pools or branch in self.pools) and needs <= self.skills


@dataclass(frozen=True, slots=True)
class BoothRequest:
    """A booth checking in. Higher `priority` is more urgent; `needs` must be ⊆ CSO skills.

    `checked_in_at` (same clock as `now`) lets a booth that dropped and came back rejoin
    at its original place; None means "checking in now".
    """

    booth_id: str
    branch: str
    priority: int = 0
    needs: frozenset[str] = frozenset()
    checked_in_at: float | None = None

    def __post_init__(self) -> None:
        _require_id(self.booth_id, "booth_id")
        _require_id(self.branch, "branch")
        if not isinstance(self.priority, int) or isinstance(self.priority, bool):
            raise ValueError("priority must be an int")
        object.__setattr__(self, "needs", _as_str_set(self.needs, "needs"))


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class Reserved:
    """Offer the booth to the CSO; it counts against the CSO's capacity until it lapses."""

    booth_id: str
    cso_id: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class Assigned:
    """The CSO accepted: start the session."""

    booth_id: str
    cso_id: str


@dataclass(frozen=True, slots=True)
class ReservationLapsed:
    """The offer is withdrawn; the booth is back at its old queue place."""

    booth_id: str
    cso_id: str
    reason: LapseReason


@dataclass(frozen=True, slots=True)
class Requeued:
    """The in-service booth lost its CSO and waits again, ahead of normal booths."""

    booth_id: str
    former_cso_id: str


@dataclass(frozen=True, slots=True)
class CsoRetired:
    """The CSO is gone for good (grace ran out, or it logged out)."""

    cso_id: str


@dataclass(frozen=True, slots=True)
class Released:
    """The session ended (normally, or the booth left mid-session)."""

    booth_id: str
    cso_id: str


@dataclass(frozen=True, slots=True)
class Dequeued:
    """A waiting or reserved booth left before being served."""

    booth_id: str


Decision = Reserved | Assigned | ReservationLapsed | Requeued | CsoRetired | Released | Dequeued


# --------------------------------------------------------------------------- errors


class DispatchError(Exception):
    """Base of every error the dispatcher raises on a bad call. State is left unchanged."""


class UnknownBooth(DispatchError):
    pass


class UnknownCso(DispatchError):
    pass


class AlreadyQueued(DispatchError):
    """The booth id is already known (waiting, reserved or in service)."""


class NotReservedFor(DispatchError):
    """accept/decline for a booth that is not currently reserved for that CSO."""


class NotInService(DispatchError):
    """release for a booth that is not in service."""


class NotWaiting(DispatchError):
    """position() for a booth that is reserved or in service."""


class InvalidTransition(DispatchError):
    """A CSO state change that makes no sense (e.g. pausing a lost CSO)."""


# --------------------------------------------------------------------------- snapshot


@dataclass(frozen=True, slots=True)
class CsoView:
    cso_id: str
    branch: str
    state: CsoState
    capacity: int
    load: int
    reserved: tuple[str, ...]
    in_service: tuple[str, ...]
    idle_since: float
    grace_deadline: float | None


@dataclass(frozen=True, slots=True)
class DispatchSnapshot:
    """A plain, serialisable picture for the supervisor view."""

    csos: tuple[CsoView, ...]
    waiting: int
    reserved: int
    in_service: int
    active_capacity: int
    mean_service_time: float
    next_deadline: float | None
