"""The wire gate: every bad input becomes one documented, typed error."""

from __future__ import annotations

import json

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.codec import decode_inbound, decode_outbound, encode, error_reply
from signaling.errors import ERROR_HINTS, ErrorCode, ProtocolError
from signaling.messages import (
    ALL_MESSAGES,
    INBOUND,
    OUTBOUND,
    Accept,
    BookingRef,
    CheckIn,
    Hello,
    Offer,
    Role,
    WalkInRef,
    type_name,
)
from signaling.schema import protocol_schema
from signaling.version import PROTOCOL_VERSION

WALK_IN = WalkInRef(nik="3171234567890123", kpj="12345678901", claim_type="termination")


def code_of(raw: str | bytes, role: Role = Role.BOOTH, **kw: int) -> ErrorCode:
    with pytest.raises(ProtocolError) as info:
        decode_inbound(raw, role, **kw)
    return info.value.code


def test_round_trip_keeps_every_field() -> None:
    sent = CheckIn(claim=WALK_IN, language="en", needs_assistance=True)
    got = decode_inbound(encode(sent), Role.BOOTH)
    assert got == sent


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", ErrorCode.MALFORMED_JSON),
        (b"\xff\xfe", ErrorCode.MALFORMED_JSON),
        ("[1, 2]", ErrorCode.INVALID_MESSAGE),
        ('"hello"', ErrorCode.INVALID_MESSAGE),
        ('{"type": "ping"}', ErrorCode.UNSUPPORTED_VERSION),
        ('{"v": 99, "type": "ping"}', ErrorCode.UNSUPPORTED_VERSION),
        ('{"v": 1}', ErrorCode.INVALID_MESSAGE),
        ('{"v": 1, "type": 5}', ErrorCode.INVALID_MESSAGE),
        ('{"v": 1, "type": "teleport"}', ErrorCode.UNKNOWN_TYPE),
        ('{"v": 1, "type": "accept", "session_id": "s1"}', ErrorCode.FORBIDDEN_FOR_ROLE),
        ('{"v": 1, "type": "welcome"}', ErrorCode.FORBIDDEN_FOR_ROLE),
        ('{"v": 1, "type": "check_in"}', ErrorCode.INVALID_MESSAGE),
        ('{"v": 1, "type": "ping", "surprise": 1}', ErrorCode.INVALID_MESSAGE),
        (
            '{"v": 1, "type": "answer", "session_id": "../x", "sdp": "v=0"}',
            ErrorCode.INVALID_MESSAGE,
        ),
    ],
)
def test_bad_input_gets_a_specific_code(raw: str, code: ErrorCode) -> None:
    assert code_of(raw) is code


def test_version_mismatch_is_fatal_and_names_both_versions() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_inbound('{"v": 2, "type": "ping", "id": "m1"}', Role.CSO)
    assert info.value.fatal
    assert "v1" in info.value.message and "2" in info.value.message
    assert info.value.ref == "m1"


def test_oversized_message_is_refused_before_parsing() -> None:
    big = encode(Offer(session_id="s1", sdp="a" * 60_000))
    assert code_of(big, Role.CSO, max_bytes=10_000) is ErrorCode.TOO_LARGE


def test_invalid_nik_is_reported_without_echoing_it() -> None:
    claim = {"kind": "walk_in", "nik": "31712345678901", "kpj": "12345678", "claim_type": "death"}
    raw = json.dumps({"v": 1, "type": "check_in", "id": "c1", "claim": claim})
    with pytest.raises(ProtocolError) as info:
        decode_inbound(raw, Role.BOOTH)
    assert info.value.code is ErrorCode.INVALID_MESSAGE
    assert "claim.walk_in.nik" in info.value.message
    assert "31712345678901" not in info.value.message
    assert info.value.ref == "c1"


def test_error_reply_carries_code_hint_and_ref() -> None:
    reply = error_reply(ProtocolError(ErrorCode.NOT_IN_SESSION, "no", ref="m9"))
    assert reply.code is ErrorCode.NOT_IN_SESSION
    assert reply.ref == "m9" and reply.reply_to == "m9"
    assert reply.hint == ERROR_HINTS[ErrorCode.NOT_IN_SESSION]
    assert decode_outbound(encode(reply), Role.CSO) == reply


def test_every_error_code_has_a_hint() -> None:
    assert set(ERROR_HINTS) == set(ErrorCode)


def test_directions_do_not_leak() -> None:
    # A CSO may accept; a booth may not; the server never receives `welcome`.
    assert decode_inbound(encode(Accept(session_id="s")), Role.CSO)
    for role in Role:
        assert "welcome" not in {type_name(m) for m in INBOUND[role]}
        assert "hello" not in {type_name(m) for m in OUTBOUND[role]}


# --- JSON Schema: the browser's view of the protocol agrees with the server's -------------

SCHEMA = protocol_schema()


def _validator(root: str) -> jsonschema.Draft202012Validator:
    doc = {"$defs": SCHEMA["$defs"], **SCHEMA["messages"][root]}
    return jsonschema.Draft202012Validator(doc)


def test_schema_names_every_direction() -> None:
    assert SCHEMA["protocol_version"] == PROTOCOL_VERSION
    assert set(SCHEMA["messages"]) == {
        f"{r}_{d}" for r in ("booth", "cso", "supervisor") for d in ("to_server", "from_server")
    }


@pytest.mark.parametrize(
    "message",
    [
        Hello(token="t"),
        CheckIn(claim=WALK_IN),
        CheckIn(claim=BookingRef(booking_code="JKT-2026-0001")),
        Offer(session_id="s1", sdp="v=0"),
    ],
)
def test_encoded_messages_validate_against_the_schema(message: object) -> None:
    role = Role.CSO if isinstance(message, Offer) else Role.BOOTH
    _validator(f"{role}_to_server").validate(json.loads(encode(message)))  # type: ignore[arg-type]


def test_schema_rejects_what_the_codec_rejects() -> None:
    bad = {"v": 1, "id": "x", "ts": 1.0, "type": "check_in", "claim": {"kind": "walk_in"}}
    assert not _validator("booth_to_server").is_valid(bad)


# --- fuzz: any input is a valid message or one of our typed errors ----------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def near_messages(draw: st.DrawFn) -> str:
    body = draw(st.dictionaries(st.text(max_size=12), json_values, max_size=6))
    if draw(st.booleans()):
        body["v"] = draw(st.sampled_from([1, 1, 1, 2, "1"]))
    if draw(st.booleans()):
        body["type"] = draw(st.sampled_from([*ALL_MESSAGES, "nope"]))
    return json.dumps(body)


@settings(max_examples=400, deadline=None)
@given(raw=st.one_of(near_messages(), st.text(max_size=200), st.binary(max_size=200)),
       role=st.sampled_from(list(Role)))  # fmt: skip
def test_decoder_never_raises_anything_but_protocol_error(raw: str | bytes, role: Role) -> None:
    try:
        message = decode_inbound(raw, role)
    except ProtocolError as exc:
        assert exc.code in ErrorCode
        assert exc.message
    else:
        assert type(message) in INBOUND[role]


def test_a_browser_candidate_with_username_fragment_is_accepted() -> None:
    # What RTCIceCandidate.toJSON() sends from Chromium, as the console relays it.
    raw = json.dumps({
        "v": 1, "id": "c" * 32, "ts": 1.0, "reply_to": None, "type": "candidate",
        "session_id": "s" * 32,
        "candidate": {"candidate": "candidate:1 1 udp 2122260223 192.0.2.10 50000 typ host",
                      "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "abcd"},
    })  # fmt: skip
    message = decode_inbound(raw, Role.CSO)
    assert message.candidate.usernameFragment == "abcd"  # type: ignore[attr-defined]
