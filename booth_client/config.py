"""Kiosk settings: `LOKET_BOOTH_*` environment variables, flags on top (`loket booth`)."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.settings import CommaList
from signaling.messages import BookingRef, ClaimType, Language, WalkInRef


class BoothConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOKET_BOOTH_", extra="ignore")

    server_url: str = Field(
        default="http://127.0.0.1:8000", description="the Loket server, http(s)://host:port"
    )
    credential: SecretStr = Field(description="from `loket booth enrol` (lkb_...)")
    source: Literal["synthetic"] = "synthetic"
    language: Language = Language.INDONESIAN
    # What the synthetic participant checks in with. A real kiosk asks the participant.
    booking_code: str | None = None
    # Unset: a synthetic participant derived from the booth id, so that demo booths stand
    # for different people (one NIK's open claim is shared by whoever checks in with it).
    walk_in_nik: str | None = None
    walk_in_kpj: str | None = None
    walk_in_claim_type: ClaimType = ClaimType.RESIGNATION
    needs_assistance: bool = False
    show_documents: bool = Field(
        default=False,
        description="synthetic participant: once media is up, send a picture of every "
        "document the claim still needs (demo)",
    )
    documents_after_s: float = Field(default=3.0, ge=0, description="delay before that")
    rejoin_after_session: bool = Field(
        default=True, description="check the next (synthetic) participant in after a session"
    )
    ice_host_addresses: CommaList = Field(
        default_factory=list, description="local addresses offered to peers; empty = all"
    )
    width: int = Field(default=640, ge=160, le=1920)
    height: int = Field(default=480, ge=120, le=1080)
    fps: float = Field(default=15.0, gt=0, le=30)
    tone_hz: float = Field(default=440.0, gt=20, lt=20_000)
    speak_pattern: str = Field(
        default="always",
        description="synthetic participant's voice: always, silent, or ON/OFF[@DELAY] "
        "seconds of tone and silence (e.g. 1.5/4)",
    )
    audio_sink: Literal["auto", "null", "measure"] = Field(
        default="auto",
        description="where the officer's voice goes: auto (the sound card, else nothing), "
        "null, or measure (levels only, to audio_log: tests and diagnostics)",
    )
    audio_log: Path | None = Field(
        default=None, description="with audio_sink=measure: append one JSON line per frame"
    )
    reconnect_min: float = Field(default=0.5, gt=0)
    reconnect_max: float = Field(default=15.0, gt=0)
    replaced_backoff: float = Field(
        default=120.0,
        gt=0,
        description="after another process with this credential took the connection over "
        "(close 4409): wait this long before trying again (doubling, at most 30 min)",
    )
    outbox_dir: Path | None = Field(
        default=None,
        description="where captures wait for the server's acknowledgement; default "
        "~/.local/state/loket-booth/<booth>/outbox",
    )
    check_in_retry_s: float = Field(
        default=10.0, gt=0, description="retry a check-in refused for a passing server fault"
    )

    @field_validator("speak_pattern")
    @classmethod
    def _valid_pattern(cls, value: str) -> str:
        from booth_client.sources.synthetic import SpeakPattern

        SpeakPattern.parse(value)  # ValueError names the accepted forms
        return value

    @property
    def ws_url(self) -> str:
        base = self.server_url.rstrip("/")
        if base.startswith("https://"):
            return "wss://" + base.removeprefix("https://")
        return "ws://" + base.removeprefix("http://")

    def claim(self, booth_id: str) -> BookingRef | WalkInRef:
        if self.booking_code:
            return BookingRef(booking_code=self.booking_code)
        seed = zlib.crc32(booth_id.encode())
        # A structurally valid NIK: Jakarta 317101, born 12-08-1990 (day +40: a woman).
        nik = self.walk_in_nik or f"317101520890{seed % 9999 + 1:04d}"
        kpj = self.walk_in_kpj or f"{seed % 10**11:011d}"
        return WalkInRef(nik=nik, kpj=kpj, claim_type=self.walk_in_claim_type)
