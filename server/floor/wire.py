"""The floor's events and audit entries as they travel between processes: versioned JSON.

A cluster's gateways hand events to the leader through Redis, and the leader keeps the
events it applied (for the next leader's replay) and the audit entries it decided (for the
outbox). Those bytes outlive the process that wrote them and are read by another one,
possibly of another Loket version during a rolling upgrade, so they are plain JSON with a
format number, not pickles of this version's classes:
- a reader refuses a format newer than it knows (`UnknownFormat`: the caller logs it,
  counts it and does not lead), and reads the older ones it lists;
- a relayed message is kept once, as the frame the peer sent (validated again on reading),
  not twice as a parsed model and its frame.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from server.domain.access import socket_role
from server.floor.effects import Audit, RecordedEffect, TicketEvent
from server.floor.events import (
    BroadcastDue,
    CaptureUndeliverable,
    ClaimRefused,
    ClaimResolved,
    DisplayOpened,
    DocumentStored,
    Event,
    Now,
    PeerClosed,
    PeerOpened,
    Received,
    TicketClaimRefused,
    TicketClaimResolved,
    TimerFired,
    VerificationReady,
)
from server.floor.snapshot import UnknownFormat
from server.principal import AccountRole, Principal
from signaling.codec import decode_inbound, encode
from signaling.errors import ErrorCode
from signaling.messages import CheckIn, ClaimSummary, IssueTicket, Role

WIRE_FORMAT = 1
READS = frozenset({1})
# A frame on the floor's stream was already held to the socket's limit; this only stops a
# forged entry from making the reader parse something huge.
MAX_FRAME = 256 * 1024


def _principal(p: Principal) -> dict[str, Any]:
    return {
        "s": p.subject,
        "r": str(p.role),
        "n": p.display_name,
        "b": p.branch,
        "p": sorted(p.pools),
        "k": sorted(p.skills),
        "c": p.capacity,
        "x": p.expires_at,
    }


def _to_principal(d: dict[str, Any]) -> Principal:
    return Principal(
        subject=d["s"],
        role=AccountRole(d["r"]),
        display_name=d["n"],
        branch=d["b"],
        pools=frozenset(d["p"]),
        skills=frozenset(d["k"]),
        capacity=int(d["c"]),
        expires_at=d["x"],
    )


def _check_in(raw: str) -> CheckIn:
    message = decode_inbound(raw, Role.BOOTH, max_bytes=MAX_FRAME)
    if not isinstance(message, CheckIn):
        raise ValueError("not a check-in")
    return message


def _issue_ticket(raw: str) -> IssueTicket:
    message = decode_inbound(raw, Role.SUPERVISOR, max_bytes=MAX_FRAME)
    if not isinstance(message, IssueTicket):
        raise ValueError("not a ticket request")
    return message


def event_to_dict(event: Event) -> dict[str, Any]:
    match event:
        case TicketClaimResolved():
            return {"t": "ticket_claim", "p": _principal(event.issuer), "b": event.branch,
                    "q": encode(event.request), "claim": event.claim_id,
                    "sum": event.claim.model_dump(mode="json"), "bk": event.booking,
                    "ap": event.appointment}  # fmt: skip
        case TicketClaimRefused():
            return {"t": "ticket_refused", "p": _principal(event.issuer), "b": event.branch,
                    "q": encode(event.request), "code": str(event.code),
                    "msg": event.message}  # fmt: skip
        case DisplayOpened():
            return {"t": "display", "b": event.branch}
        case PeerOpened():
            return {"t": "opened", "p": _principal(event.principal), "c": event.connection,
                    "r": event.resume, "n": event.new_token}  # fmt: skip
        case PeerClosed():
            return {"t": "closed", "p": _principal(event.principal), "c": event.connection}
        case Received():
            raw = event.raw if event.raw is not None else encode(event.message)
            return {"t": "received", "p": _principal(event.principal), "c": event.connection,
                    "m": raw, "at": event.received_at}  # fmt: skip
        case ClaimResolved():
            return {"t": "resolved", "b": event.booth_id, "q": encode(event.request),
                    "claim": event.claim_id}  # fmt: skip
        case ClaimRefused():
            return {"t": "refused", "b": event.booth_id, "q": encode(event.request),
                    "code": str(event.code), "msg": event.message}  # fmt: skip
        case DocumentStored():
            return {"t": "document", "claim": event.claim_id, "d": event.document_id,
                    "kind": event.kind, "sha256": event.sha256, "w": event.width,
                    "h": event.height}  # fmt: skip
        case VerificationReady():
            return {"t": "advice", "claim": event.claim_id, "d": event.document_id,
                    "what": event.what}  # fmt: skip
        case CaptureUndeliverable():
            return {"t": "lost", "claim": event.claim_id, "capture": event.capture_id,
                    "b": event.booth_id, "s": event.session_id, "kind": event.kind,
                    "why": event.reason, "branch": event.branch}  # fmt: skip
        case TimerFired():
            return {"t": "timer"}
        case BroadcastDue():
            return {"t": "broadcast"}
    raise TypeError(f"not a floor event: {event!r}")  # pragma: no cover


def event_from_dict(d: dict[str, Any]) -> Event:
    match d["t"]:
        case "ticket_claim":
            return TicketClaimResolved(_to_principal(d["p"]), d["b"], _issue_ticket(d["q"]),
                                       d["claim"], ClaimSummary.model_validate(d["sum"]),
                                       bool(d["bk"]), d["ap"])  # fmt: skip
        case "ticket_refused":
            return TicketClaimRefused(_to_principal(d["p"]), d["b"], _issue_ticket(d["q"]),
                                      ErrorCode(d["code"]), d["msg"])  # fmt: skip
        case "display":
            return DisplayOpened(str(d["b"]))
        case "opened":
            return PeerOpened(_to_principal(d["p"]), d["c"], d["r"], d["n"])
        case "closed":
            return PeerClosed(_to_principal(d["p"]), d["c"])
        case "received":
            principal = _to_principal(d["p"])
            role = socket_role(principal)
            if role is None:
                raise ValueError(f"a {principal.role} has no floor socket")
            message = decode_inbound(d["m"], role, max_bytes=MAX_FRAME)
            return Received(principal, d["c"], message, d["at"], d["m"])
        case "resolved":
            return ClaimResolved(d["b"], _check_in(d["q"]), d["claim"])
        case "refused":
            return ClaimRefused(d["b"], _check_in(d["q"]), ErrorCode(d["code"]), d["msg"])
        case "document":
            return DocumentStored(d["claim"], d["d"], d["kind"], d["sha256"], d["w"], d["h"])
        case "advice":
            return VerificationReady(d["claim"], d["d"], d["what"])
        case "lost":
            return CaptureUndeliverable(d["claim"], d["capture"], d["b"], d["s"], d["kind"],
                                        d["why"], d["branch"])  # fmt: skip
        case "timer":
            return TimerFired()
        case "broadcast":
            return BroadcastDue()
    raise ValueError(f"unknown floor event {d['t']!r}")


def _check_format(d: dict[str, Any]) -> None:
    found = d.get("v")
    if found not in READS:
        raise UnknownFormat(
            f"floor wire format {found!r}; this version reads {sorted(READS)}: "
            "upgrade this process (see the README's upgrade order)"
        )


def dump_event(event: Event) -> bytes:
    return json.dumps({"v": WIRE_FORMAT, "e": event_to_dict(event)},
                      separators=(",", ":")).encode()  # fmt: skip


def load_event(blob: bytes) -> Event:
    d = json.loads(blob)
    _check_format(d)
    return event_from_dict(d["e"])


def dump_applied(applied: Sequence[tuple[Event, Now]]) -> bytes:
    """A batch the leader applied, with the instants it applied each at (for replay)."""
    entries = [[event_to_dict(e), now.mono, now.wall] for e, now in applied]
    return json.dumps({"v": WIRE_FORMAT, "a": entries}, separators=(",", ":")).encode()


def load_applied(blob: bytes) -> list[tuple[Event, Now]]:
    d = json.loads(blob)
    _check_format(d)
    return [(event_from_dict(e), Now(mono, wall)) for e, mono, wall in d["a"]]


def dump_audit(entry: RecordedEffect) -> bytes:
    """A recorded effect for the outbox stream: an audit entry, or (`k: ticket`) a visit's
    ticket event. An entry without `k` is an audit entry (as before ticket events)."""
    if isinstance(entry, TicketEvent):
        fields = {name: getattr(entry, name) for name in TicketEvent.__slots__}
        return json.dumps({"v": WIRE_FORMAT, "k": "ticket", **fields},
                          separators=(",", ":")).encode()  # fmt: skip
    return json.dumps(
        {
            "v": WIRE_FORMAT,
            "id": entry.effect_id,
            "at": entry.at,
            "actor": entry.actor,
            "role": entry.role,
            "action": entry.action,
            "claim": entry.claim_id,
            "details": entry.details,
            "fp": list(entry.fingerprints),
        },
        separators=(",", ":"),
        default=str,
    ).encode()


def load_audit(blob: bytes) -> RecordedEffect:
    d = json.loads(blob)
    _check_format(d)
    if d.get("k") == "ticket":
        return TicketEvent(**{name: d[name] for name in TicketEvent.__slots__})
    return Audit(d["id"], d["at"], d["actor"], d["role"], d["action"], d["claim"],
                 dict(d["details"]), tuple(d["fp"]))  # fmt: skip
