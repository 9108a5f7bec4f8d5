"""The floor's front-of-house I/O: the desk's claim lookup and the visit events' writer.

Glue, as `ws.claim_resolver` and `ws.audit_writer` are for check-ins and audit entries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy.ext.asyncio import AsyncEngine

from server.adapters.speech import Speech
from server.adapters.sql.front import Displays, FrontStore
from server.api import display as display_api
from server.api import reports as reports_api
from server.api.display import DisplayServices
from server.domain.privacy import mask_nik
from server.domain.reports import EventRow, ReportConfig
from server.floor import ClaimLookupError
from server.floor.effects import TicketEvent
from server.floor.runtime import TicketClaim, TicketEventWriter, TicketResolver, speech_key
from server.metrics import Metrics
from server.ports.floor import Floor
from server.ports.router import Router
from server.principal import Principal
from server.records import RecordsError, RecordsService
from server.settings import Settings
from signaling.errors import ErrorCode
from signaling.messages import BookingRef, ClaimSummary, IssueTicket


def ticket_resolver(records: RecordsService) -> TicketResolver:
    """The claim behind a ticket asked at a desk: a booking found, or a walk-in registered
    (no quota), checked in at the branch; the floor gets only a masked summary."""

    async def resolve(desk: Principal, branch: str, request: IssueTicket) -> TicketClaim:
        try:
            claim = await records.check_in(replace(desk, branch=branch), request.claim)
        except RecordsError as exc:
            code = ErrorCode.CLAIM_NOT_FOUND if exc.status == 404 else ErrorCode.CLAIM_REFUSED
            raise ClaimLookupError(code, exc.message) from None
        booking = isinstance(request.claim, BookingRef)
        summary = ClaimSummary(
            kind="booking" if booking else "walk_in",
            claim_id=claim.claim_id,
            booking_code=claim.booking_code,
            claim_type=claim.claim_type,
            nik_masked=mask_nik(claim.nik),
        )
        appointment = claim.appointment.timestamp() if claim.appointment else None
        return TicketClaim(claim.claim_id, summary, booking, appointment)

    return resolve


def event_writer(store: FrontStore) -> TicketEventWriter:
    """The floor outbox's writer of visit events: exactly once by effect id (the row's key),
    folded into the visit in the same transaction."""

    async def write(event: TicketEvent) -> None:
        row = EventRow(
            event_id=event.effect_id, at=event.at, kind=event.kind, branch=event.branch,
            visit_id=event.visit_id, ticket_id=event.ticket_id, number=event.number,
            category=event.category, booth_id=event.booth_id, cso_id=event.cso_id,
            session_id=event.session_id, claim_id=event.claim_id, actor=event.actor,
            detail=(event.detail or "")[:200] or None,
        )  # fmt: skip
        await store.write_events([row])

    return write


# --- wiring: the app factory calls these ----------------------------------------------------

WEB = Path(__file__).resolve().parent.parent.parent
PAGES = {"/display": "web_display", "/desk": "web_desk", "/reports": "web_reports"}


@dataclass
class Front:
    """The front of house's parts in one server process."""

    store: FrontStore
    displays: Displays
    speech: Speech
    speech_key: bytes
    runtime_kw: dict[str, Any]

    def attach(self, app: FastAPI, floor: Floor, router: Router, metrics: Metrics) -> None:
        settings: Settings = app.state.settings
        app.state.front = self.store
        app.state.clock = time.time
        app.state.display = DisplayServices(
            settings, self.displays, self.speech, self.speech_key, floor, router, metrics
        )

    async def close(self) -> None:
        await self.store.close()
        await self.displays.close()


def report_config(settings: Settings) -> ReportConfig:
    return ReportConfig(
        target_wait=settings.report_target_wait,
        short_abandon=settings.report_short_abandon,
        utc_offset=settings.branch_utc_offset * 3600,
    )


def open_front(
    settings: Settings, engine: AsyncEngine, records: RecordsService, secret: str
) -> Front:
    store = FrontStore(engine, report_config(settings))
    return Front(
        store=store,
        displays=Displays(engine),
        speech=Speech(settings.data_dir / "speech"),
        speech_key=speech_key(secret.encode()),
        runtime_kw={
            "resolve_ticket": ticket_resolver(records),
            "write_events": event_writer(store),
        },
    )


def install(app: FastAPI) -> None:
    """The routes and the three static pages (display, desk, reports)."""
    app.include_router(display_api.router)
    app.include_router(reports_api.router)
    for prefix, directory in PAGES.items():
        if (WEB / directory).is_dir():
            app.mount(prefix, StaticFiles(directory=WEB / directory, html=True), name=directory)
