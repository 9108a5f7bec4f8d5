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
        f"{r}_{d}"
        for r in ("booth", "cso", "supervisor", "display")
        for d in ("to_server", "from_server")
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


# --- hostile nesting: a typed `malformed_json`, never a RecursionError -------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 20_000 + "]" * 20_000,  # the 20,000-deep array of the issue
        "[" * 20_000,  # and unterminated
        '{"a":' * 20_000 + "1" + "}" * 20_000,  # deep objects
        ('{"v": 1, "type": "ping", "x": ' + "[" * 5_000 + "]" * 5_000 + "}").encode(),  # bytes
        '{"v": 1, "type": "ping", "x": ' + "[{" * 17 + "}]" * 17 + "}",  # 35 levels: just over
    ],
    ids=["deep_array", "unterminated", "deep_objects", "bytes", "just_over_the_limit"],
)
def test_hostile_nesting_gets_malformed_json(raw: str | bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_inbound(raw, Role.BOOTH, max_bytes=1_000_000)
    assert info.value.code is ErrorCode.MALFORMED_JSON
    assert "nested" in info.value.message and "32" in info.value.message


def test_nesting_up_to_the_limit_and_brackets_inside_strings_are_fine() -> None:
    from signaling.codec import MAX_JSON_DEPTH

    # 32 levels: parsed, then refused only for the unexpected field.
    inner = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
    assert code_of('{"v": 1, "type": "ping", "x": ' + inner + "}") is ErrorCode.INVALID_MESSAGE
    # Brackets in a string (even escaped quotes before them) are text, not nesting.
    sdp = 'v=0\r\na=x:"\\"' + "[{" * 5_000
    offer = decode_inbound(encode(Offer(session_id="s1", sdp=sdp)), Role.CSO)
    assert offer.sdp == sdp  # type: ignore[attr-defined]


def test_any_other_json_failure_is_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    import signaling.codec as codec

    def explode(_: str) -> object:
        raise RecursionError("maximum recursion depth exceeded")

    # (A message the one-pass parser refuses, so the step-by-step path runs json.loads.)
    monkeypatch.setattr(codec.json, "loads", explode)
    assert code_of('{"v": 1, "type": "ping", "x": 1}') is ErrorCode.MALFORMED_JSON

    def odd(_: str) -> object:
        raise TypeError("something unexpected")

    monkeypatch.setattr(codec.json, "loads", odd)
    assert code_of('{"v": 1, "type": "ping", "x": 1}') is ErrorCode.MALFORMED_JSON


nested_json = st.recursive(
    st.integers() | st.text(alphabet='[]{}"\\ab', max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=60,
)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(value=nested_json, limit=st.integers(min_value=0, max_value=8))
def test_depth_scan_agrees_with_the_parsed_depth(value: object, limit: int) -> None:
    from signaling.codec import json_depth_exceeds

    assert json_depth_exceeds(json.dumps(value), limit) is (_depth(value) > limit)
