"""Booth-to-CSO dispatch: a pure, sans-I/O matching engine.

The server feeds it events with the current time and carries out the `Decision`s it
returns. See `server.dispatch.dispatcher` for the rules.
"""

from server.dispatch.dispatcher import Dispatcher
from server.dispatch.eta import ServiceTimes
from server.dispatch.model import (
    ANY_BRANCH,
    AlreadyQueued,
    Assigned,
    BoothRequest,
    BoothState,
    CsoProfile,
    CsoRetired,
    CsoState,
    CsoView,
    Decision,
    Dequeued,
    DispatchConfig,
    DispatchError,
    DispatchSnapshot,
    InvalidTransition,
    LapseReason,
    NotInService,
    NotReservedFor,
    NotWaiting,
    Released,
    Requeued,
    ReservationLapsed,
    Reserved,
    UnknownBooth,
    UnknownCso,
)

__all__ = [
    "ANY_BRANCH",
    "AlreadyQueued",
    "Assigned",
    "BoothRequest",
    "BoothState",
    "CsoProfile",
    "CsoRetired",
    "CsoState",
    "CsoView",
    "Decision",
    "Dequeued",
    "DispatchConfig",
    "DispatchError",
    "DispatchSnapshot",
    "Dispatcher",
    "InvalidTransition",
    "LapseReason",
    "NotInService",
    "NotReservedFor",
    "NotWaiting",
    "Released",
    "Requeued",
    "ReservationLapsed",
    "Reserved",
    "ServiceTimes",
    "UnknownBooth",
    "UnknownCso",
]
