"""Pure builders of what peers are told: welcomes (the whole state of a peer), offers,
assignments, queue places and the supervisors' floor snapshot. They read the core's public
read model only (`FloorCore.booths`, `.sessions`, `.csos`, `.links`, `.is_focused`, ...).

A supervisor's floor is its scope's (`server.domain.access.floor_scope`): the queue of the
branches it looks after, its branches' officers with all their sessions, and other
officers only with the sessions of its branches' booths."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from server.domain.access import floor_scope
from server.domain.turn import ice_servers_for
from server.floor.model import cso_key
from server.principal import Principal
from signaling.messages import (
    Assigned,
    BoothAssigned,
    BoothInfo,
    BoothOffered,
    BoothStatus,
    BranchQueue,
    ClaimSummary,
    CsoSession,
    CsoStatus,
    CsoView,
    DisplayState,
    FloorSample,
    FloorSnapshot,
    FloorView,
    IceServer,
    LobbyBranch,
    LobbyView,
    PeerQuality,
    PendingOffer,
    QueueStats,
    Role,
    SessionView,
    WaitingBooth,
    Welcome,
)
from signaling.session import IN_CALL, SessionState

if TYPE_CHECKING:
    from server.floor.core import FloorCore
    from server.floor.lobby import Ticket
    from server.floor.model import BoothRecord, CsoRecord, PeerKey, SessionRecord

Scope = frozenset[str] | None  # branches a supervisor sees; None: all

S = SessionState
NO_CLAIM = ClaimSummary(kind="walk_in")
LONGEST_SHOWN = 20  # the longest-waiting booths a floor view lists (for alerts)


def booth_info(booth: BoothRecord) -> BoothInfo:
    p = booth.principal
    return BoothInfo(booth_id=p.subject, branch=p.branch, label=p.display_name)


def ice_servers(core: FloorCore, key: PeerKey) -> list[IceServer]:
    cfg = core.config
    specs = ice_servers_for(
        list(cfg.ice_urls), key.address, secret=cfg.turn_secret, now=core.now.wall,
        ttl=cfg.turn_ttl,
    )  # fmt: skip
    return [
        IceServer(urls=list(s.urls), username=s.username, credential=s.credential) for s in specs
    ]


def queue_place(core: FloorCore, booth: BoothRecord) -> tuple[int, int, float | None] | None:
    """(position, waiting, estimated wait) of a booth waiting in the queue, else None."""
    d = core.dispatcher
    if booth.state is not S.QUEUED or not d.has_booth(booth.booth_id):
        return None
    if d.state_of(booth.booth_id) != "waiting":
        return None
    eta: float | None = d.estimated_wait(booth.booth_id)
    if eta is not None and not math.isfinite(eta):
        eta = None  # no CSO on duty: there is no honest estimate
    return d.position(booth.booth_id), d.waiting_count(), eta


def _cso_name(core: FloorCore, record: SessionRecord | None) -> str | None:
    if record is None:
        return None
    cso = core.csos.get(record.live.cso_id)
    return cso.principal.display_name if cso else None


def booth_status(core: FloorCore, booth: BoothRecord) -> BoothStatus:
    record = core.sessions.get(booth.session_id or "")
    place = queue_place(core, booth)
    in_call = booth.state in IN_CALL and record is not None
    return BoothStatus(
        state=booth.state,
        session_id=booth.session_id,
        focused=core.is_focused(booth),
        position=place[0] if place else None,
        waiting=place[1] if place else None,
        estimated_wait_s=place[2] if place else None,
        cso_name=_cso_name(core, record) if in_call else None,
        claim_id=booth.claim.claim_id if booth.claim else None,
        ice_servers=ice_servers(core, booth.key) if in_call else [],
        last_ended=booth.last_ended,
        ticket=core.called_ticket_of(booth.booth_id, core.now.mono),
    )


def _welcome(
    core: FloorCore, principal: Principal, role: Role, token: str, resumed: bool
) -> Welcome:
    return Welcome(
        role=role,
        peer_id=principal.subject,
        display_name=principal.display_name,
        heartbeat_interval=core.config.heartbeat_interval,
        heartbeat_timeout=core.config.heartbeat_timeout,
        resume_token=token,
        resumed=resumed,
        token_expires_at=principal.expires_at,
    )


def booth_welcome(core: FloorCore, booth: BoothRecord, resumed: bool) -> Welcome:
    w = _welcome(core, booth.principal, Role.BOOTH, booth.resume_token, resumed)
    return w.model_copy(update={"booth": booth_status(core, booth)})


def cso_status(core: FloorCore, cso: CsoRecord) -> CsoStatus:
    sessions: list[CsoSession] = []
    offers: list[PendingOffer] = []
    for record in core.sessions_of(cso.key):
        booth = core.booths.get(record.live.booth_id)
        if booth is None:
            continue
        if record.live.state is S.RESERVED:
            offers.append(
                PendingOffer(
                    session_id=record.live.session_id,
                    booth=booth_info(booth),
                    claim=booth.claim or NO_CLAIM,
                    language=booth.language,
                    expires_in=_expires_in(core, record),
                    ice_servers=ice_servers(core, cso.key),
                )
            )
        else:
            sessions.append(
                CsoSession(
                    session_id=record.live.session_id,
                    booth=booth_info(booth),
                    claim=booth.claim or NO_CLAIM,
                    language=booth.language,
                    state=record.live.state,
                    checked_in_at=booth.checked_in_at,
                    booth_connected=booth.connected,
                    ice_servers=ice_servers(core, cso.key),
                    monitored=core.config.monitor_visible_to_cso
                    and core.monitored(record.live.session_id),
                )
            )
    return CsoStatus(
        available=not cso.paused, focused=cso.focused, sessions=sessions, offers=offers
    )


def cso_welcome(core: FloorCore, cso: CsoRecord, resumed: bool) -> Welcome:
    w = _welcome(core, cso.principal, Role.CSO, cso.resume_token, resumed)
    return w.model_copy(update={"cso": cso_status(core, cso)})


def supervisor_welcome(core: FloorCore, principal: Principal, connection: str) -> Welcome:
    w = _welcome(core, principal, Role.SUPERVISOR, connection, False)
    scope = floor_scope(principal)
    view = floor_view(core, scope)
    return w.model_copy(update={"floor": view.model_copy(update={"history": history(core, scope)})})


def history(core: FloorCore, scope: Scope) -> list[FloorSample]:
    """The last hour's queue samples, over the scope's branches."""
    samples = []
    for sample in core.history:
        waiting, oldest = 0, 0.0
        for branch, (count, wait) in sample.branches.items():
            if scope is None or branch in scope:
                waiting += count
                oldest = max(oldest, wait)
        samples.append(FloorSample(t=sample.t, waiting=waiting, oldest_wait_s=oldest))
    return samples


def queue_by_branch(core: FloorCore) -> dict[str, tuple[int, float]]:
    """branch -> (booths waiting, longest wait in seconds), for the history."""
    now = core.now.wall
    out: dict[str, tuple[int, float]] = {}
    for b in core.booths.values():
        if b.state is S.QUEUED:
            count, wait = out.get(b.principal.branch, (0, 0.0))
            out[b.principal.branch] = (count + 1, max(wait, now - b.checked_in_at))
    return out


def _expires_in(core: FloorCore, record: SessionRecord) -> float:
    if record.offer_expires_at is None:
        return 0.0
    return max(0.0, record.offer_expires_at - core.now.mono)


def offer(core: FloorCore, record: SessionRecord, booth: BoothRecord) -> BoothOffered:
    return BoothOffered(
        session_id=record.live.session_id,
        booth=booth_info(booth),
        claim=booth.claim or NO_CLAIM,
        language=booth.language,
        expires_in=_expires_in(core, record),
        ice_servers=ice_servers(core, cso_key(record.live.cso_id)),
    )


def assigned_for_booth(core: FloorCore, booth: BoothRecord) -> Assigned:
    record = core.sessions[booth.session_id or ""]
    return Assigned(
        session_id=record.live.session_id,
        cso_name=_cso_name(core, record) or "",
        ice_servers=ice_servers(core, booth.key),
        claim_id=booth.claim.claim_id if booth.claim else None,
    )


def assigned_for_cso(core: FloorCore, record: SessionRecord, booth: BoothRecord) -> BoothAssigned:
    return BoothAssigned(
        session_id=record.live.session_id,
        booth=booth_info(booth),
        claim=booth.claim or NO_CLAIM,
        language=booth.language,
        ice_servers=ice_servers(core, cso_key(record.live.cso_id)),
        checked_in_at=booth.checked_in_at,
    )


def quality_band(q: PeerQuality) -> tuple[int, int, int]:
    """Coarse bands of a quality report: a change of band is worth a floor update."""
    rtt = -1 if q.rtt_ms is None else min(int(q.rtt_ms // 100), 5)
    loss = -1 if q.loss is None else (0 if q.loss < 0.02 else 1 if q.loss < 0.1 else 2)
    fps = -1 if q.fps is None else min(int(q.fps // 5), 6)
    return rtt, loss, fps


def _queue_stats(core: FloorCore, now: float, scope: Scope) -> QueueStats:
    d = core.dispatcher
    waiting = [
        b for b in core.booths.values()
        if b.state is S.QUEUED and (scope is None or b.principal.branch in scope)
    ]  # fmt: skip
    by_branch: dict[str, int] = {}
    oldest_of: dict[str, float] = {}
    last_of: dict[str, tuple[int, str]] = {}  # branch -> (position, booth) of its last booth
    for b in waiting:
        branch = b.principal.branch
        by_branch[branch] = by_branch.get(branch, 0) + 1
        oldest_of[branch] = min(oldest_of.get(branch, now), b.checked_in_at)
        if d.has_booth(b.booth_id) and d.state_of(b.booth_id) == "waiting":
            place = (d.position(b.booth_id), b.booth_id)
            if place > last_of.get(branch, (-1, "")):
                last_of[branch] = place

    def eta(booth_id: str | None) -> float | None:
        if booth_id is None:
            return None
        value = d.estimated_wait(booth_id)
        return value if math.isfinite(value) else None

    branches = [
        BranchQueue(
            branch=branch,
            waiting=count,
            oldest_wait_s=max(0.0, now - oldest_of[branch]),
            estimated_wait_s=eta(last_of[branch][1]) if branch in last_of else None,
        )
        for branch, count in sorted(by_branch.items())
    ]
    last = max(last_of.values(), default=None)
    longest = sorted(waiting, key=lambda b: (b.checked_in_at, b.booth_id))[:LONGEST_SHOWN]
    oldest = min((b.checked_in_at for b in waiting), default=now)
    return QueueStats(
        waiting=len(waiting),
        oldest_wait_s=max(0.0, now - oldest),
        by_branch=by_branch,
        estimated_wait_s=eta(last[1]) if last else None,
        branches=branches,
        longest=[
            WaitingBooth(
                booth_id=b.booth_id,
                branch=b.principal.branch,
                label=b.principal.display_name,
                waited_s=max(0.0, now - b.checked_in_at),
                connected=b.connected,
                reconnects=b.reconnects,
            )
            for b in longest
        ],
    )


def floor_view(core: FloorCore, scope: Scope = None) -> FloorView:
    now = core.now.wall
    monitored = {lk.session_id for lk in core.links.values() if lk.kind == "monitor"}
    by_cso: dict[str, list[SessionView]] = {}
    load: dict[str, int] = {}
    for record in core.sessions.values():
        live = record.live
        booth = core.booths.get(live.booth_id)
        load[live.cso_id] = load.get(live.cso_id, 0) + 1
        cso = core.csos.get(live.cso_id)
        mine = (
            scope is None
            or (booth is not None and booth.principal.branch in scope)
            or (cso is not None and cso.principal.branch in scope)
        )
        if not mine:
            continue
        by_cso.setdefault(live.cso_id, []).append(
            SessionView(
                session_id=live.session_id,
                booth_id=live.booth_id,
                branch=booth.principal.branch if booth else "",
                state=str(live.state),
                since=live.created_at,
                booth_label=booth.principal.display_name if booth else "",
                state_since=record.state_since or live.created_at,
                booth_connected=booth.connected if booth else False,
                reconnects=booth.reconnects if booth else 0,
                monitored=live.session_id in monitored,
                booth_quality=record.quality.get("booth"),
                cso_quality=record.quality.get("cso"),
            )
        )
    csos = []
    for cso in core.csos.values():
        if scope is not None and cso.principal.branch not in scope and cso.cso_id not in by_cso:
            continue
        state: Literal["available", "paused", "lost"] = (
            "lost" if not cso.connected else "paused" if cso.paused else "available"
        )
        sessions = sorted(by_cso.get(cso.cso_id, []), key=lambda v: (v.since, v.session_id))
        csos.append(
            CsoView(
                cso_id=cso.cso_id,
                name=cso.principal.display_name,
                state=state,
                capacity=core.capacity_of(cso),
                load=load.get(cso.cso_id, 0),
                sessions=sessions,
                branch=cso.principal.branch,
            )
        )
    lost = [
        c for c in core.lost_captures
        if now - c.at < 3600 and (scope is None or c.branch in scope)
    ]  # fmt: skip
    return FloorView(
        queue=_queue_stats(core, now, scope), csos=csos, now=now, lost_captures=lost,
        lobby=lobby_view(core, scope),
    )  # fmt: skip


def snapshot(core: FloorCore, scope: Scope = None) -> FloorSnapshot:
    view = floor_view(core, scope)
    return FloorSnapshot(
        queue=view.queue, csos=view.csos, now=view.now, lost_captures=view.lost_captures,
        lobby=view.lobby,
    )  # fmt: skip


# --- front of house ---------------------------------------------------------------------------

TICKETS_SHOWN = 200  # waiting and called tickets a floor view lists (oldest first)


@dataclass
class BranchBooths:
    """A branch's booths as the lobby sees them, gathered in one pass over the floor."""

    free: int = 0
    called: int = 0
    used: int = 0
    last_queued: tuple[int, str] | None = None  # (position, booth) of its last in line

    @property
    def total(self) -> int:
        return self.free + self.called + self.used


def branch_booths(core: FloorCore, only: set[str] | None = None) -> dict[str, BranchBooths]:
    """Per branch (of `only`, or all): booths free / called / in use among the connected,
    and the last in line for an officer. One pass over the booths, whatever the branches."""
    d = core.dispatcher
    out: dict[str, BranchBooths] = {}
    for b in core.booths.values():
        branch = b.principal.branch
        if only is not None and branch not in only:
            continue
        row = out.setdefault(branch, BranchBooths())
        if b.state is S.QUEUED and d.has_booth(b.booth_id) and d.state_of(b.booth_id) == "waiting":
            place = (d.position(b.booth_id), b.booth_id)
            row.last_queued = (
                place if row.last_queued is None or place > row.last_queued else row.last_queued
            )
        if not b.connected:
            continue
        if core.lobby.called_to(b.booth_id) is not None:
            row.called += 1
        elif core.is_free(b):
            row.free += 1
        else:
            row.used += 1
    return out


def _estimate(core: FloorCore, branch: str, booths: BranchBooths | None) -> float | None:
    """A new ticket's wait shown to the participant: to a booth (the tickets ahead shared
    among the branch's booths), then to an officer (the floor's estimate for its last
    booth in line; 0 when nobody waits; None when no officer is on duty)."""
    booths = booths or BranchBooths()
    lobby = core.lobby.estimate(branch, booths.total, core.config.lobby)
    if booths.last_queued is None:
        floor: float | None = 0.0 if core.csos else None
    else:
        value = core.dispatcher.estimated_wait(booths.last_queued[1])
        floor = value if math.isfinite(value) else None
    if lobby is None or floor is None:
        return None
    return lobby + floor


def lobby_estimate(core: FloorCore, branch: str) -> float | None:
    return _estimate(core, branch, branch_booths(core, {branch}).get(branch))


def lobby_view(core: FloorCore, scope: Scope = None) -> LobbyView:
    now = core.now.wall
    lobby = core.lobby
    branches = sorted(b for b in lobby.branches() if scope is None or b in scope)
    booths = branch_booths(core, set(branches))
    tickets_of: dict[str, list[Ticket]] = {}
    for t in lobby.tickets.values():
        tickets_of.setdefault(t.branch, []).append(t)
    rows = []
    for branch in branches:
        tickets = tickets_of.get(branch, [])
        waiting = [t for t in tickets if t.state == "waiting"]
        by_category: dict[str, int] = {}
        for t in waiting:
            by_category[t.category] = by_category.get(t.category, 0) + 1
        row = booths.get(branch) or BranchBooths()
        rows.append(
            LobbyBranch(
                branch=branch,
                waiting=len(waiting),
                waiting_by_category=by_category,
                oldest_wait_s=max((now - t.arrived_at for t in waiting), default=0.0),
                called=len(tickets) - len(waiting),
                booths_free=row.free,
                booths_called=row.called,
                booths_in_use=row.used,
                estimated_wait_s=_estimate(core, branch, row),
            )
        )
    shown = sorted(
        (t for t in lobby.tickets.values() if scope is None or t.branch in scope),
        key=lambda t: (t.arrived_at, t.number),
    )[:TICKETS_SHOWN]
    return LobbyView(
        branches=rows,
        tickets=[lobby.view(t, now) for t in shown],
        categories={c.code: c.name for c in core.config.lobby.categories},
    )


def display_state(core: FloorCore, branch: str, booths: BranchBooths | None = None) -> DisplayState:
    """What a branch's displays show (`booths`: its row of `branch_booths`, if gathered)."""
    lobby = core.lobby
    waiting: dict[str, int] = {}
    for (b, category), ids in lobby.lines.items():
        if b == branch and ids:
            waiting[category] = len(ids)
    if booths is None:
        booths = branch_booths(core, {branch}).get(branch)
    return DisplayState(
        branch=branch,
        calls=list(lobby.calls.get(branch, ())),
        waiting=sum(waiting.values()),
        waiting_by_category=waiting,
        estimated_wait_s=_estimate(core, branch, booths),
        now=core.now.wall,
    )
