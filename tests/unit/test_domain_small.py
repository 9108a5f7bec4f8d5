"""Small pure rules: TURN credentials, NIK masking, SDP fingerprints."""

from __future__ import annotations

import base64
import hashlib
import hmac

from server.domain.privacy import mask_nik, mask_niks_in
from server.domain.sdp import dtls_fingerprints
from server.domain.turn import ice_servers_for, turn_credential


def test_turn_credential_matches_coturn_rest_api_form() -> None:
    cred = turn_credential(b"s3cret", "booth-1", now=1_700_000_000.7, ttl=3600)
    assert cred.username == "1700003600:booth-1"
    expected = hmac.new(b"s3cret", b"1700003600:booth-1", hashlib.sha1).digest()
    assert base64.b64decode(cred.password) == expected
    assert cred.expires_at == 1_700_003_600


def test_ice_servers_group_turn_and_keep_stun() -> None:
    urls = ["stun:stun.local:3478", "turn:t.local:3478?transport=udp", "turns:t.local:5349"]
    servers = ice_servers_for(urls, "cso-1", secret=b"k", now=0, ttl=60)
    assert servers[0].urls == ("stun:stun.local:3478",) and servers[0].username is None
    assert servers[1].urls == ("turn:t.local:3478?transport=udp", "turns:t.local:5349")
    assert servers[1].username == "60:cso-1" and servers[1].credential


def test_turn_without_secret_is_dropped_and_empty_config_gives_no_servers() -> None:
    assert ice_servers_for(["turn:t:3478"], "x", secret=None, now=0, ttl=60) == []
    assert ice_servers_for([], "x", secret=b"k", now=0, ttl=60) == []


def test_nik_masking() -> None:
    assert mask_nik("3171234567890123") == "************0123"
    line = "walk-in 3171234567890123 at booth, phone 0812345678"
    assert mask_niks_in(line) == "walk-in ************0123 at booth, phone 0812345678"
    assert mask_niks_in("x12345678901234567y") == "x12345678901234567y"  # 17 digits: not a NIK


SDP = """v=0\r
o=- 1 1 IN IP4 0.0.0.0\r
a=fingerprint:sha-256 ab:cd:EF:01\r
m=video 9 UDP/TLS/RTP/SAVPF 96\r
a=fingerprint:sha-256 AB:CD:EF:01\r
m=audio 9 UDP/TLS/RTP/SAVPF 111\r
a=fingerprint:sha-512 11:22\r
"""


def test_fingerprints_are_normalised_and_deduplicated() -> None:
    assert dtls_fingerprints(SDP) == ("sha-256 AB:CD:EF:01", "sha-512 11:22")
    assert dtls_fingerprints("v=0\r\n") == ()
