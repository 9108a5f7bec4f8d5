"""Booth-side parts that need no network: synthetic sources, ICE address choice, config,
and the kiosk's bookkeeping (rebuild from `welcome`, reply matching, close codes), both as
pure functions and through BoothClient's message handling over a fake socket."""

from __future__ import annotations

import asyncio
import fractions
import time

import aioice.ice
import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamTrack
from pydantic import ValidationError

import booth_client.ice
from booth_client.client import BoothClient
from booth_client.config import BoothConfig
from booth_client.cso_standin import percentile
from booth_client.ice import use_host_addresses
from booth_client.kiosk import (
    CloseKind,
    KioskView,
    Refusal,
    Requests,
    close_reaction,
    refresh_margin,
    resync,
)
from booth_client.peer import warm_up
from booth_client.sources.media import HoldLayer, ShapedTrack
from booth_client.sources.synthetic import SpeakPattern, SyntheticToneTrack, SyntheticVideoTrack
from signaling.codec import decode_inbound, error_reply
from signaling.errors import ErrorCode, ProtocolError
from signaling.messages import (
    Ack,
    Answer,
    Assigned,
    BookingRef,
    BoothStatus,
    CheckIn,
    Envelope,
    Error,
    Focus,
    IceServer,
    PeerState,
    Queued,
    Reauth,
    Reserved,
    Role,
    SessionEnded,
    SessionEndNote,
    WalkInRef,
    Welcome,
)
from signaling.session import SessionState

S = SessionState


async def test_video_frames_move_and_carry_a_steady_clock() -> None:
    track = SyntheticVideoTrack("booth-7", 320, 240, fps=30)
    frames = [await track.recv() for _ in range(3)]
    assert all((f.width, f.height) == (320, 240) for f in frames)
    pts = [f.pts for f in frames]
    assert pts == sorted(pts) and pts[1] - pts[0] == 90_000 // 30
    # A moving scene: consecutive pictures differ (a frozen feed would be a fault).
    a, b = (f.to_ndarray(format="bgr24") for f in frames[:2])
    assert np.count_nonzero(a != b) > 0


def test_the_scene_shows_the_participant_with_no_hold_slate() -> None:
    # The CSO always sees the participant: hold is shown on the kiosk, not in the video.
    assert not hasattr(SyntheticVideoTrack("booth-1", 320, 240), "focused")


def test_speak_patterns_voice_the_tone_in_bursts() -> None:
    silent = SyntheticToneTrack(440, pattern="silent")
    assert not silent.samples_for(10).any()
    bursts = SyntheticToneTrack(440, pattern="1/2@1")  # 1 s on, 2 s off, after 1 s
    voiced = [bool(bursts.samples_for(n).any()) for n in range(0, 250, 25)]  # every 0.5 s
    assert voiced == [False, False, True, True, False, False, False, False, True, True]
    with pytest.raises(ValueError, match="ON/OFF"):
        SpeakPattern.parse("loud")


async def test_tone_is_20ms_of_48k_mono_s16() -> None:
    track = SyntheticToneTrack(440)
    frame = await track.recv()
    assert frame.sample_rate == 48_000 and frame.samples == 960
    samples = track.samples_for(0)
    assert samples.dtype == np.int16 and 0 < np.abs(samples).max() < 2**15


def test_ice_addresses_are_restricted_and_restored() -> None:
    use_host_addresses(["127.0.0.1", "::1"])
    try:
        assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(False, True) == ["::1"]
        with pytest.raises(ValueError):
            use_host_addresses(["not-an-address"])
    finally:
        use_host_addresses([])
    assert aioice.ice.get_host_addresses is booth_client.ice._original


def test_config_walk_in_by_default_and_booking_when_given() -> None:
    config = BoothConfig(credential="lkb_x.y", server_url="https://loket.example:8443")  # type: ignore[arg-type]
    walk_in = config.claim("jkt01-b1")
    assert isinstance(walk_in, WalkInRef)
    assert config.claim("jkt01-b2").nik != walk_in.nik  # each demo booth a different person
    assert config.ws_url == "wss://loket.example:8443"
    booked = config.model_copy(update={"booking_code": "BK-1234"})
    assert booked.claim("jkt01-b1") == BookingRef(booking_code="BK-1234")


def test_config_reads_comma_separated_addresses_and_refuses_missing_credential(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOKET_BOOTH_ICE_HOST_ADDRESSES", "10.0.0.5, 127.0.0.1")
    monkeypatch.setenv("LOKET_BOOTH_CREDENTIAL", "lkb_a.b")
    assert BoothConfig().ice_host_addresses == ["10.0.0.5", "127.0.0.1"]  # type: ignore[call-arg]
    monkeypatch.delenv("LOKET_BOOTH_CREDENTIAL")
    with pytest.raises(ValidationError):
        BoothConfig()  # type: ignore[call-arg]


def test_percentile_nearest_rank() -> None:
    assert percentile([], 95) is None
    assert percentile([5.0], 95) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 95) == 95.0
    assert percentile(values, 50) == 50.0


def test_server_list_settings_read_commas_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    from server.settings import Settings

    monkeypatch.setenv("LOKET_ICE_SERVERS", "turn:turn.example:3478, stun:stun.example")
    monkeypatch.setenv("LOKET_ALLOWED_ORIGINS", '["https://console.example"]')
    settings = Settings()
    assert settings.ice_servers == ["turn:turn.example:3478", "stun:stun.example"]
    assert settings.origins == frozenset({"https://console.example"})


# --- rebuild from welcome (pure) ----------------------------------------------------------


def status(state: SessionState, **fields: object) -> BoothStatus:
    return BoothStatus(state=state, **fields)  # type: ignore[arg-type]


def test_view_is_rebuilt_wholly_from_the_booth_status() -> None:
    ice = [IceServer(urls=["turn:turn.example:3478"], username="u", credential="c")]
    view = KioskView.from_status(
        status(
            S.FOCUSED,
            session_id="s1",
            focused=True,
            claim_id="c1",
            cso_name="Siti",
            ice_servers=ice,
        )
    )
    assert (view.state, view.session_id, view.claim_id, view.focused, view.cso_name) == (
        S.FOCUSED, "s1", "c1", True, "Siti",
    )  # fmt: skip
    assert view.ice_servers == ice and view.position is None
    queued = KioskView.from_status(
        status(S.QUEUED, position=2, waiting=5, estimated_wait_s=90.0, claim_id="c2")
    )
    assert (queued.state, queued.position, queued.waiting, queued.estimated_wait_s) == (
        S.QUEUED, 2, 5, 90.0,
    )  # fmt: skip
    assert KioskView.from_status(None).state is S.IDLE


def test_resumed_mid_call_keeps_its_peer_and_reports_its_state() -> None:
    plan = resync(
        status(S.ON_HOLD, session_id="s1"),
        peer_session="s1",
        wants_check_in=True,
        rejoin_after_session=True,
    )
    assert plan.keep_peer and plan.report_peer
    assert not plan.check_in and plan.finished is None
    assert plan.view.state is S.ON_HOLD and plan.view.session_id == "s1"


def test_a_peer_of_another_or_no_session_is_dropped() -> None:
    for server_side in (status(S.CONNECTING, session_id="s2"), status(S.QUEUED), status(S.IDLE)):
        plan = resync(
            server_side, peer_session="s1", wants_check_in=False, rejoin_after_session=True
        )
        assert not plan.keep_peer and not plan.report_peer, server_side.state


def test_a_session_ended_while_away_is_finished_and_rejoin_decides_the_next_check_in() -> None:
    ended = status(S.IDLE, last_ended=SessionEndNote(session_id="s1", reason="cso_ended"))
    again = resync(ended, peer_session="s1", wants_check_in=True, rejoin_after_session=True)
    assert again.finished == SessionEndNote(session_id="s1", reason="cso_ended")
    assert not again.keep_peer and again.check_in and again.view.state is S.IDLE
    done = resync(ended, peer_session=None, wants_check_in=True, rejoin_after_session=False)
    assert done.finished is not None and not done.check_in and not done.wants_check_in


def test_idle_checks_in_only_while_a_participant_waits() -> None:
    idle = status(S.IDLE)
    assert resync(idle, peer_session=None, wants_check_in=True,
                  rejoin_after_session=False).check_in  # fmt: skip
    # After a refused check-in the participant must try again: a reconnect does not.
    assert not resync(idle, peer_session=None, wants_check_in=False,
                      rejoin_after_session=True).check_in  # fmt: skip
    # Queued (the server kept the place): nothing to send.
    queued = resync(status(S.QUEUED, position=0), peer_session=None, wants_check_in=True,
                    rejoin_after_session=True)  # fmt: skip
    assert not queued.check_in and queued.view.position == 0


# --- replies (pure) ----------------------------------------------------------------------


def test_replies_are_matched_to_their_requests_by_id() -> None:
    requests = Requests()
    check_in = CheckIn(claim=BookingRef(booking_code="BK-1"))
    reauth = Reauth(token="t")
    requests.track(check_in)
    requests.track(reauth)
    refused = error_reply(ProtocolError(ErrorCode.CLAIM_REFUSED, "elsewhere", ref=check_in.id))
    settled = requests.settle(refused)
    assert settled is not None and settled.request is check_in and not settled.ok
    assert settled.refusal == Refusal("check_in", "claim_refused", "elsewhere", refused.hint)
    assert "check_in refused: claim_refused: elsewhere" in str(settled.refusal)
    acked = requests.settle(Ack(reply_to=reauth.id))
    assert acked is not None and acked.request is reauth and acked.ok
    # Each reply settles its request once; unrelated replies match nothing.
    assert requests.settle(Ack(reply_to=reauth.id)) is None
    assert requests.settle(Error(code=ErrorCode.INTERNAL, message="x")) is None
    assert requests.settle(Queued(position=0, waiting=1)) is None
    assert len(requests) == 0


def test_an_error_naming_the_request_only_by_ref_still_matches() -> None:
    requests = Requests()
    answer = Answer(session_id="s1", sdp="v=0")
    requests.track(answer)
    error = Error(code=ErrorCode.PEER_UNAVAILABLE, message="away", ref=answer.id)
    settled = requests.settle(error)
    assert settled is not None and settled.refusal is not None
    assert settled.refusal.request == "answer"


def test_unanswered_relays_are_forgotten_past_the_limit_and_cleared_on_reconnect() -> None:
    requests = Requests(keep=3)
    sent = [PeerState(session_id="s1", state="connected") for _ in range(5)]
    for message in sent:
        requests.track(message)
    assert requests.pending() == sent[2:]
    assert requests.settle(Ack(reply_to=sent[0].id)) is None
    assert requests.clear() == sent[2:] and len(requests) == 0


# --- close codes and token timing (pure) ---------------------------------------------------


def reaction(code: int | None, strikes: int = 0):  # type: ignore[no-untyped-def]
    return close_reaction(
        code, auth_strikes=strikes, backoff=0.7, backoff_max=15.0, replaced_backoff=120.0
    )


def test_close_codes_decide_what_the_kiosk_does_next() -> None:
    assert reaction(None).kind is CloseKind.RETRY and reaction(None).delay == 0.7
    assert reaction(1006).kind is CloseKind.RETRY
    assert reaction(4408).kind is CloseKind.RETRY
    assert reaction(4429).kind is CloseKind.SLOW_DOWN and reaction(4429).delay == 15.0
    replaced = reaction(4409)
    assert replaced.kind is CloseKind.REPLACED and replaced.delay == 120.0
    assert "credential" in replaced.note
    # Refused authentication: log in with the credential once, then give up.
    for code in (4401, 4403):
        assert reaction(code, strikes=1).kind is CloseKind.RELOGIN
        assert reaction(code, strikes=1).delay == 0
        assert reaction(code, strikes=2).kind is CloseKind.GIVE_UP


def test_tokens_are_refreshed_a_minute_early_or_a_third_of_a_short_life() -> None:
    assert refresh_margin(600) == 60
    assert refresh_margin(900) == 60
    assert refresh_margin(30) == 10
    assert refresh_margin(1) == 0.5


# --- BoothClient's message handling over a fake socket --------------------------------------


class FakeSocket:
    """Stands in for the websocket: records what the kiosk sends."""

    def __init__(self) -> None:
        self.sent: list[Envelope] = []
        self.closed = False

    async def send(self, raw: str) -> None:
        self.sent.append(decode_inbound(raw, Role.BOOTH))

    async def close(self) -> None:
        self.closed = True

    def last(self, kind: type[Envelope]) -> Envelope:
        return next(m for m in reversed(self.sent) if isinstance(m, kind))


class FakePeer:
    def __init__(self, session_id: str, state: str = "connected") -> None:
        self.session_id, self.state, self.closed = session_id, state, False

    async def close(self) -> None:
        self.closed = True


def kiosk(**config: object) -> tuple[BoothClient, FakeSocket]:
    client = BoothClient(
        BoothConfig(credential="lkb_x.y", booking_code="BK-7777", **config)  # type: ignore[arg-type]
    )
    sock = FakeSocket()
    client._ws = sock  # type: ignore[assignment]
    client.booth_id = "jkt01-b1"
    return client, sock


def welcome(booth: BoothStatus, *, resumed: bool = True) -> Welcome:
    return Welcome(
        role=Role.BOOTH, peer_id="jkt01-b1", display_name="Booth 1", heartbeat_interval=10,
        heartbeat_timeout=30, resume_token="r", resumed=resumed, booth=booth,
    )  # fmt: skip


def refusal_of(request: Envelope, code: ErrorCode, message: str = "no") -> Error:
    return error_reply(ProtocolError(code, message, ref=request.id))


async def test_a_refused_check_in_leaves_the_kiosk_idle_and_records_why() -> None:
    client, sock = kiosk()
    await client._resync(welcome(status(S.IDLE), resumed=False))
    check_in = sock.last(CheckIn)
    assert client.state is S.IDLE and client.checking_in  # not queued before the ack
    await client._on_message(refusal_of(check_in, ErrorCode.CLAIM_REFUSED, "at booth 2"))
    assert client.state is S.IDLE and not client.checking_in
    assert client.last_refusal is not None
    assert (client.last_refusal.request, client.last_refusal.code) == ("check_in", "claim_refused")
    # A stray place after the refusal does not make it queued either.
    await client._on_message(Queued(position=0, waiting=1))
    assert client.state is S.IDLE and client.position is None
    # Nor does a reconnect: the participant has to try again.
    await client._resync(welcome(status(S.IDLE)))
    assert [m for m in sock.sent if isinstance(m, CheckIn)] == [check_in]


async def test_an_acked_check_in_queues_and_a_lapsed_offer_queues_again() -> None:
    client, sock = kiosk()
    await client._resync(welcome(status(S.IDLE), resumed=False))
    await client._on_message(Ack(reply_to=sock.last(CheckIn).id))
    assert client.state is S.QUEUED
    await client._on_message(Queued(position=3, waiting=4, estimated_wait_s=60.0))
    assert client.position == 3
    await client._on_message(Reserved(session_id="s1"))
    assert client.state is S.RESERVED and client.session_id == "s1"
    await client._on_message(Queued(position=0, waiting=4))  # the offer lapsed
    assert client.state is S.QUEUED and client.session_id is None and client.position == 0


async def test_an_illegal_transition_on_check_in_resyncs_the_socket() -> None:
    client, sock = kiosk()
    await client._resync(welcome(status(S.IDLE), resumed=False))
    await client._on_message(refusal_of(sock.last(CheckIn), ErrorCode.ILLEGAL_TRANSITION))
    assert sock.closed  # reconnect: the next welcome says where the booth stands


async def test_resumed_mid_call_the_kiosk_keeps_its_peer_and_re_reports_it() -> None:
    client, sock = kiosk()
    peer = FakePeer("s1", "connected")
    client._peer = peer  # type: ignore[assignment]
    await client._resync(welcome(status(S.CONNECTING, session_id="s1", claim_id="c1")))
    assert not peer.closed and client._peer is peer
    reported = sock.last(PeerState)
    assert (reported.session_id, reported.state) == ("s1", "connected")  # type: ignore[attr-defined]
    # The server moves on once it hears it; the kiosk already shows the call as up.
    assert client.state is S.ON_HOLD and client.claim_id == "c1"
    assert not any(isinstance(m, CheckIn) for m in sock.sent)


async def test_focus_told_before_media_takes_effect_when_media_comes_up() -> None:
    client, _ = kiosk()
    await client._resync(welcome(status(S.CONNECTING, session_id="s1")))
    await client._on_message(Focus(session_id="s1", focused=True))
    assert client.state is S.CONNECTING and client.focused
    client._media_up("s1")
    assert client.state is S.FOCUSED


async def test_welcome_for_another_session_drops_the_old_peer() -> None:
    client, _ = kiosk()
    peer = FakePeer("old")
    client._peer = peer  # type: ignore[assignment]
    await client._resync(welcome(status(S.QUEUED, position=1)))
    assert peer.closed and client._peer is None
    assert client.state is S.QUEUED and client.position == 1


async def test_a_session_ended_while_away_checks_the_next_participant_in() -> None:
    client, sock = kiosk()
    client._peer = FakePeer("s1")  # type: ignore[assignment]
    ended = SessionEndNote(session_id="s1", reason="cso_ended")
    await client._resync(welcome(status(S.IDLE, last_ended=ended)))
    assert client._peer is None and client.checking_in
    await client._on_message(Ack(reply_to=sock.last(CheckIn).id))
    assert client.state is S.QUEUED

    lone, lone_sock = kiosk(rejoin_after_session=False)
    await lone._resync(welcome(status(S.IDLE, last_ended=ended)))
    assert not lone.checking_in and not lone_sock.sent


async def test_live_session_end_and_cso_loss() -> None:
    client, sock = kiosk()
    await client._resync(welcome(status(S.ON_HOLD, session_id="s1", claim_id="c1")))
    await client._on_message(SessionEnded(session_id="s1", reason="cso_lost"))
    assert client.state is S.QUEUED and client.session_id is None  # requeued, not done
    await client._on_message(
        Assigned(session_id="s2", cso_name="Budi", ice_servers=[], claim_id="c1")
    )
    assert client.state is S.CONNECTING and client.session_id == "s2"
    await client._on_message(SessionEnded(session_id="s2", reason="cso_ended"))
    assert client.state is S.IDLE and client.checking_in  # the next participant
    assert isinstance(sock.sent[-1], CheckIn)


class _Camera(MediaStreamTrack):
    """A camera that always has a frame ready: what the shaper lets through is its choice."""

    kind = "video"

    async def recv(self) -> av.VideoFrame:
        await asyncio.sleep(0.005)  # ~200 fps
        frame = av.VideoFrame.from_ndarray(np.zeros((360, 640, 3), np.uint8), format="bgr24")
        frame.pts, frame.time_base = 0, fractions.Fraction(1, 90_000)
        return frame


async def _shaped(track: ShapedTrack, seconds: float) -> tuple[set[tuple[int, int]], float]:
    sizes, frames, began = set(), 0, time.monotonic()
    while time.monotonic() - began < seconds:
        frame = await track.recv()
        sizes.add((frame.width, frame.height))
        frames += 1
    return sizes, frames / (time.monotonic() - began)


async def test_the_face_track_sends_its_hold_layer_only_while_held() -> None:
    held = False
    track = ShapedTrack(_Camera(), hold=HoldLayer(max_height=180, fps=5.0))
    track.held = lambda: held
    sizes, rate = await _shaped(track, 0.5)
    assert sizes == {(640, 360)} and rate > 50  # not held: as the camera gives it
    held = True
    sizes, rate = await _shaped(track, 1.2)
    assert sizes == {(320, 180)} and 3.0 <= rate <= 6.5, rate
    track.max_height = 90  # the degradation policy's cap still applies, the lower wins
    sizes, _ = await _shaped(track, 0.5)
    assert sizes == {(160, 90)}
    held = False
    sizes, rate = await _shaped(track, 0.3)
    assert sizes == {(160, 90)} and rate > 50


async def test_a_track_whose_hold_layer_has_no_frame_rate_pauses_while_held() -> None:
    held = True
    track = ShapedTrack(_Camera(), hold=HoldLayer(max_height=None, fps=0.0))
    track.held = lambda: held
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(track.recv(), 0.3)
    held = False
    frame = await asyncio.wait_for(track.recv(), 1.0)
    assert (frame.width, frame.height) == (640, 360)


async def test_the_kiosk_warms_its_media_up_once_over_loopback() -> None:
    use_host_addresses(["127.0.0.1"])
    try:
        took = await warm_up(within=20.0)
    finally:
        use_host_addresses([])  # aioice's own choice again for the tests after this one
    assert took is not None and 0 < took < 20.0
