"""A booth and a CSO in one live session, over real sockets (no media needed)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx

from server.ports.live_state import LiveSession
from signaling.messages import (
    Accept,
    Answer,
    Assigned,
    BookingRef,
    BoothAssigned,
    BoothOffered,
    CheckIn,
    Offer,
    Role,
)
from signaling.session import SessionState
from tests.support.accounts import add_user, booth_token, enrol_booth, login
from tests.support.live_server import LiveServer
from tests.support.ws_client import SignalClient

# SDPs with DTLS fingerprints, as a browser and aiortc would announce them.
CSO_PRINT = "sha-256 " + ":".join(["C5"] * 32)
BOOTH_PRINT = "sha-256 " + ":".join(["B0"] * 32)


def _sdp(fingerprint: str) -> str:
    algo, value = fingerprint.split(" ")
    return f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=fingerprint:{algo} {value}\r\n"


@dataclass
class LivePair:
    booth: SignalClient
    cso: SignalClient
    assigned: BoothAssigned
    booth_token: str
    cso_token: str

    @property
    def claim_id(self) -> str:
        assert self.assigned.claim.claim_id is not None
        return self.assigned.claim.claim_id

    def booth_headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.booth_token}", **extra}

    def cso_headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.cso_token}", **extra}

    async def close(self) -> None:
        await self.booth.close()
        await self.cso.close()


async def live_pair(server: LiveServer, booking_code: str, *, booth: str, cso: str) -> LivePair:
    """Booth `booth` (enrolled here) checks in for `booking_code`; CSO `cso` (created if
    new) takes it; they exchange an offer and an answer carrying DTLS fingerprints."""
    b_token = await booth_token(server, booth)
    if await server.app.state.auth.store.get_user(cso) is None:
        await add_user(server, cso, capacity=6)
    c_token = (await login(server, cso))["access_token"]
    return await pair_with_tokens(server.ws_url, b_token, c_token, booking_code)


async def pair_with_tokens(ws_url: str, b_token: str, c_token: str, booking_code: str) -> LivePair:
    booth_client = await SignalClient.connect(ws_url, Role.BOOTH, b_token)
    await booth_client.send(CheckIn(claim=BookingRef(booking_code=booking_code)))
    cso_client = await SignalClient.connect(ws_url, Role.CSO, c_token)
    offered = await cso_client.expect(BoothOffered)
    await cso_client.send(Accept(session_id=offered.session_id))
    assigned = await cso_client.expect(BoothAssigned, session_id=offered.session_id)
    await booth_client.expect(Assigned, session_id=offered.session_id)
    await cso_client.send(Offer(session_id=assigned.session_id, sdp=_sdp(CSO_PRINT)))
    await booth_client.expect(Offer)
    await booth_client.send(Answer(session_id=assigned.session_id, sdp=_sdp(BOOTH_PRINT)))
    await cso_client.expect(Answer)
    return LivePair(booth_client, cso_client, assigned, b_token, c_token)


@dataclass
class StagedSessions:
    """Stands in for the floor's "which live session is this claim in" lookup, so a test
    puts a claim's session in any state (offered, accepted, ended) without sockets.
    Install with `records.session_of_claim = staged`."""

    sessions: dict[str, LiveSession] = field(default_factory=dict)

    async def __call__(self, claim_id: str) -> LiveSession | None:
        return self.sessions.get(claim_id)

    def put(
        self, claim_id: str, *, booth: str, cso: str, state: SessionState, session_id: str = ""
    ) -> LiveSession:
        live = LiveSession(
            session_id or f"s-{claim_id[:12]}", booth, cso, state, time.time(),
            booth_fingerprints=(BOOTH_PRINT,), cso_fingerprints=(CSO_PRINT,), claim_id=claim_id,
        )  # fmt: skip
        self.sessions[claim_id] = live
        return live

    def move(self, claim_id: str, state: SessionState) -> None:
        self.sessions[claim_id] = self.sessions[claim_id].with_state(state)

    def end(self, claim_id: str) -> None:
        """The session is over and gone from live state (what the floor does)."""
        self.sessions.pop(claim_id, None)


async def booth_login(server: LiveServer, label: str, branch: str = "jkt01") -> tuple[str, str]:
    """Enrol a booth and log it in: (booth_id, access token)."""
    booth_id, credential = await enrol_booth(server, label, branch)
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        res = await http.post("/api/auth/booth", json={"credential": credential})
        res.raise_for_status()
        return booth_id, str(res.json()["access_token"])
