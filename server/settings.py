"""Loket's settings: one pydantic-settings model, read from `LOKET_*` environment variables.

With nothing set, Loket runs on embedded defaults: one process, SQLite and files under
`data_dir`, in-process routing. Every limit is a named setting, not a constant in code.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split_list(value: object) -> object:
    """`a,b` or a JSON list, from the environment; lists pass through."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [v.strip() for v in text.split(",") if v.strip()]
    return value


# A list setting that reads LOKET_X=a,b as well as LOKET_X='["a","b"]'. NoDecode stops
# pydantic-settings from insisting on JSON before our validator sees the string.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_list)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOKET_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Field(default=Path("loket-data"), description="all on-disk state")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    allowed_origins: CommaList = Field(
        default_factory=list,
        description="websocket Origin allow-list; empty = this server's own http origin",
    )
    database_url: str | None = Field(default=None, description="default: SQLite in data_dir")
    redis_url: str | None = Field(
        default=None,
        description="redis://host:6379/0: share the live floor between processes (unset: "
        "one process, in-memory)",
    )
    redis_prefix: str = Field(default="loket", min_length=1, description="key namespace")
    leader_lease: float = Field(
        default=5.0, gt=0, description="seconds the floor leader's lease lasts unrenewed"
    )
    presence_ttl: float = Field(
        default=6.0, gt=0, description="seconds before a silent process's sockets count as gone"
    )
    snapshot_interval: float = Field(
        default=2.0, gt=0, description="seconds between floor snapshots in Redis"
    )
    process_id: str | None = Field(
        default=None, description="this process's name among the cluster (default: host-pid)"
    )
    floor_events_budget: int = Field(
        default=256 * 1024 * 1024,
        ge=1024 * 1024,
        le=16 * 1024**3,
        description="bytes the floor's event stream may hold while no leader drains it; a "
        "server that cannot add its sockets' events resets them (1012) instead",
    )
    previous_secrets: CommaList = Field(
        default_factory=list,
        description="secrets used before LOKET_JWT_SECRET, during a rotation: the floor's "
        "sealed state in Redis is still read with them (never written)",
    )

    # Auth
    jwt_secret: SecretStr | None = Field(
        default=None, description="HS256 key; development generates one in data_dir"
    )
    access_token_ttl: int = Field(default=600, ge=30, le=900, description="seconds, <= 15 min")
    refresh_token_ttl: int = Field(default=12 * 3600, ge=60)
    # A refresh token presented again within this many seconds of its use, while its
    # successor is unused, gets that same successor (a lost answer); later, it is reuse.
    refresh_reuse_interval: float = Field(default=5.0, ge=0, le=60, description="seconds")
    # Failed logins. Per account: after login_max_failures the name waits
    # login_backoff_base seconds, doubling per further failure up to login_backoff_max;
    # forgotten login_window seconds after its last failure. Per address (a branch NAT):
    # far higher limits, people and booths counted apart, so no one name locks a branch.
    login_max_failures: int = Field(default=5, ge=1, description="per account")
    login_window: float = Field(default=300.0, gt=0, description="seconds")
    login_backoff_base: float = Field(default=1.0, gt=0, description="seconds")
    login_backoff_max: float = Field(default=300.0, gt=0, description="seconds")
    login_address_max_failures: int = Field(default=50, ge=1, description="people, per window")
    booth_login_address_max_failures: int = Field(default=50, ge=1, description="per window")
    # Argon2 runs in worker threads, this many at once (default: half the cores, so
    # signaling keeps a core); logins waiting beyond password_hash_queue get a 503.
    password_hash_concurrency: int = Field(
        default_factory=lambda: max(1, (os.cpu_count() or 2) // 2), ge=1
    )
    password_hash_queue: int = Field(default=32, ge=0)

    # Documents
    documents_key: SecretStr | None = Field(
        default=None,
        description="base64 of 32 bytes: AES-256-GCM key for document blobs; development "
        "generates one in data_dir, production refuses to start without it",
    )
    max_document_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024)
    retention_days: int = Field(default=365, ge=1, description="for `loket retention purge`")
    # Capture grants and resumable uploads (server/api/uploads.py).
    capture_grant_ttl: int = Field(
        default=7 * 24 * 3600, ge=60, description="seconds a kiosk may deliver a capture"
    )
    upload_chunk_max_bytes: int = Field(
        default=256 * 1024, ge=4096, description="largest PATCH body of a resumable upload"
    )
    upload_chunk_min_bytes: int = Field(
        default=16 * 1024, ge=1, description="smallest PATCH body but the last (bounds files)"
    )
    max_uploads_per_booth: int = Field(default=4, ge=1, description="in progress at once")
    max_uploads_total: int = Field(default=256, ge=1, description="in progress, all booths")
    max_upload_staging_bytes: int = Field(
        default=512 * 1024 * 1024, ge=64 * 1024, description="declared sizes in progress"
    )
    upload_expiry: float = Field(
        default=24 * 3600.0, gt=0, description="seconds an upload with no new chunk is kept"
    )
    # Sessions recorded as evidence (server/recordings.py, issue 23).
    recording_refusal: Literal["in_person", "unrecorded"] = Field(
        default="in_person",
        description="a participant who refuses recording: in_person (no remote session; "
        "the kiosk says where to go) or unrecorded (the session goes on, not recorded)",
    )
    recording_directions: str = Field(
        default="", max_length=200, description="where to go instead (kiosk, e.g. 'Loket 3')"
    )
    recording_retention_days: int = Field(
        default=1825, ge=1, description="recordings kept this long (purge), legal holds apart"
    )
    recording_grant_ttl: int = Field(
        default=30 * 24 * 3600, ge=60, description="seconds a kiosk may deliver a recording"
    )
    max_recording_segment_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024)
    max_recording_bytes: int = Field(
        default=1024**3,
        ge=1024 * 1024,
        description="bytes one recording may hold (the default rendition, 175 kbit/s, "
        "fills 1 GiB in 13 hours; a recording lasts at most 6)",
    )
    recording_playback_ttl: int = Field(
        default=4 * 3600, ge=60, description="seconds a playback's segment links work"
    )
    # The verification workbench: machine advice (server/analysis.py) and the member
    # directory (server/adapters/directory.py). 0 workers: that advice is off.
    reading_workers: int = Field(
        default=1, ge=0, le=16, description="OCR worker processes (~1 core each while reading)"
    )
    reading_queue: int = Field(default=4, ge=0, le=256, description="readings that may wait")
    reading_timeout: float = Field(
        default=20.0, gt=0, le=300, description="seconds, waiting included"
    )
    face_workers: int = Field(default=1, ge=0, le=8, description="face comparison threads")
    face_queue: int = Field(default=4, ge=0, le=256, description="comparisons that may wait")
    face_timeout: float = Field(default=10.0, gt=0, le=120, description="seconds")
    directory_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="the agency's membership service (POST lookup); unset: the membership "
        "table `loket claims import` fills",
    )
    directory_token: SecretStr | None = Field(default=None, description="its bearer token")
    directory_timeout: float = Field(
        default=3.0, gt=0, le=30, description="seconds a lookup may take, retries included"
    )
    directory_retries: int = Field(
        default=2, ge=0, le=5, description="after a 5xx or network error"
    )
    directory_backoff: float = Field(default=0.2, ge=0, le=5, description="seconds, doubling")
    directory_failures: int = Field(
        default=5, ge=1, le=100, description="failed lookups in a row that open the circuit"
    )
    directory_open_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="seconds the circuit stays open"
    )
    # Testing only (refused in production): the process kills itself with SIGKILL at this
    # point of recording an outcome, so tests can prove a retry yields exactly one outcome.
    crash_point: Literal["", "outcome_before_commit", "outcome_after_commit"] = ""

    # Dispatch
    cso_capacity: int = Field(default=6, ge=1, le=6)
    reservation_timeout: float = Field(default=15.0, gt=0)
    grace_period: float = Field(default=30.0, ge=0)
    decline_cooldown: float = Field(default=60.0, ge=0)
    default_service_time: float = Field(default=300.0, gt=0)

    # Front of house (issue 24): tickets, calls and service-level reports
    lobby_call_timeout: float = Field(
        default=90.0, gt=0, le=1800, description="seconds a called ticket has at its booth"
    )
    lobby_max_recalls: int = Field(default=2, ge=0, le=10, description="missed calls recalled")
    lobby_recycle_behind: int = Field(default=3, ge=0, le=100, description="tickets, then")
    lobby_max_recycles: int = Field(default=1, ge=0, le=10, description="then a no-show")
    report_target_wait: float = Field(
        default=900.0, gt=0, description="seconds: the service level's target wait"
    )
    report_short_abandon: float = Field(
        default=60.0, ge=0, description="seconds: unserved tickets ending sooner are excluded"
    )
    branch_utc_offset: float = Field(
        default=7.0, ge=-12, le=14, description="hours: the branches' local time (WIB: 7)"
    )

    # Sockets
    heartbeat_interval: float = Field(default=10.0, gt=0)
    heartbeat_timeout: float = Field(default=30.0, gt=0)
    hello_timeout: float = Field(default=10.0, gt=0)
    max_message_bytes: int = Field(default=69_632, ge=1024)
    max_messages_per_second: float = Field(default=200.0, gt=0)
    max_bytes_per_second: int = Field(
        default=256 * 1024,
        ge=16 * 1024,
        le=1024**3,
        description="what one socket may send, sustained (a call needs a few KB; bursts "
        "up to 4 messages of the largest size pass)",
    )
    max_descriptions_per_session: int = Field(
        default=32, ge=4, le=10_000, description="offers + answers one call may carry"
    )
    outbox_size: int = Field(
        default=1024, ge=8, description="messages queued for one socket before it is closed"
    )
    max_unauthenticated_sockets: int = Field(
        default=512, ge=1, description="sockets that have not yet said hello, in total"
    )
    account_check_interval: float = Field(
        default=30.0, gt=0, description="seconds between re-reads of a socket's account"
    )
    monitor_visible_to_cso: bool = Field(
        default=True, description="the console marks a session a supervisor is monitoring"
    )
    broadcast_interval: float = Field(
        default=0.2, gt=0, description="supervisor updates and queue places: one pass per"
    )

    # ICE: e.g. ["stun:stun.branch.local:3478", "turn:turn.agency.go.id:3478?transport=udp"]
    ice_servers: CommaList = Field(default_factory=list)
    turn_secret: SecretStr | None = None
    turn_ttl: int = Field(default=3600, ge=60)

    log_level: str = "INFO"
    log_json: bool = True
    # /metrics: open when unset; when set, scrapers send `Authorization: Bearer <token>`.
    metrics_token: SecretStr | None = Field(
        default=None, description="bearer token required by /metrics (unset: open)"
    )

    @model_validator(mode="after")
    def _production_needs_secrets(self) -> Settings:
        if self.environment == "production" and self.jwt_secret is None:
            raise ValueError("LOKET_JWT_SECRET must be set when LOKET_ENVIRONMENT=production")
        if self.environment == "production" and self.crash_point:
            raise ValueError("LOKET_CRASH_POINT is for tests; unset it in production")
        if self.environment == "production" and self.documents_key is None:
            raise ValueError(
                "LOKET_DOCUMENTS_KEY must be set when LOKET_ENVIRONMENT=production "
                "(base64 of 32 random bytes: `openssl rand -base64 32`)"
            )
        if self.heartbeat_timeout <= self.heartbeat_interval:
            raise ValueError("heartbeat_timeout must exceed heartbeat_interval")
        return self

    @cached_property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'loket.db').resolve()}"

    @cached_property
    def origins(self) -> frozenset[str]:
        if self.allowed_origins:
            return frozenset(o.rstrip("/") for o in self.allowed_origins)
        hosts = (
            {self.host, "127.0.0.1", "localhost"}
            if self.host in ("127.0.0.1", "localhost", "0.0.0.0")
            else {self.host}
        )
        return frozenset(f"http://{h}:{self.port}" for h in hosts)
