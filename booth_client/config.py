"""Kiosk settings: a TOML file (`loket booth --config FILE`), `LOKET_BOOTH_*` environment
variables over it, flags over both.

Nested sections come from the environment with a double underscore:
`LOKET_BOOTH_FACE_CAMERA__DEVICE=/dev/video2`. The kiosk imports nothing from `server/`
(tests/unit/test_kiosk_service.py keeps it so): a kiosk needs only `booth_client` and
`signaling`.
"""

from __future__ import annotations

import json
import os
import tomllib
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from booth_client.recording.config import RecordingConfig
from signaling.messages import BookingRef, ClaimType, Language, WalkInRef

ENV_PREFIX = "LOKET_BOOTH_"


def _split_list(value: object) -> object:
    """`a,b` or a JSON list, from the environment; lists pass through."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [v.strip() for v in text.split(",") if v.strip()]
    return value


# LOKET_BOOTH_X=a,b as well as '["a","b"]'. NoDecode stops pydantic-settings from insisting
# on JSON before the validator sees the string.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_list)]


class CameraConfig(BaseModel):
    """One camera. `device` is a V4L2 device with source=v4l2 (default /dev/video0 for the
    face camera, /dev/video2 for the document camera: each USB camera also has a metadata
    node), a video file (looped) with source=file, and unused with source=synthetic."""

    model_config = ConfigDict(extra="forbid")

    device: str | None = None
    width: int = Field(default=640, ge=160, le=3840)
    height: int = Field(default=480, ge=120, le=2160)
    fps: float = Field(default=15.0, gt=0, le=60)
    input_format: str | None = Field(
        default=None, description="V4L2 pixel format, e.g. mjpeg (cheaper over USB at 1080p)"
    )


class MicrophoneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["alsa", "pulse"] = "alsa"
    device: str = Field(default="default", description="ALSA (hw:1,0) or PulseAudio source")


class BoothConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore"
    )

    server_url: str = Field(
        default="http://127.0.0.1:8000", description="the Loket server, http(s)://host:port"
    )
    credential: SecretStr = Field(description="from `loket booth enrol` (lkb_...)")
    source: Literal["synthetic", "v4l2", "file"] = Field(
        default="synthetic",
        description="synthetic (test scene and tone), v4l2 (real cameras and microphone), "
        "file (looped video files, for rehearsals)",
    )
    face_camera: CameraConfig = Field(default_factory=CameraConfig)
    document_camera: CameraConfig = Field(
        default_factory=lambda: CameraConfig(width=1920, height=1080, fps=15)
    )
    document_idle_fps: float = Field(
        default=2.0,
        gt=0,
        le=30,
        description="the document camera's live track while no capture runs (full rate "
        "while one does)",
    )
    microphone: MicrophoneConfig = Field(default_factory=MicrophoneConfig)
    hold_video_height: int | None = Field(
        default=240,
        ge=90,
        description="while on hold (the officer talks to another booth) the face camera is "
        "sent at most this high, aspect kept; unset: as configured",
    )
    hold_video_fps: float | None = Field(
        default=7.5, gt=0, le=60, description="and at most this many frames a second"
    )
    hold_document_camera: bool = Field(
        default=True,
        description="while on hold and no capture runs, send nothing on the document "
        "camera's live track (a capture request resumes it)",
    )
    degrade: bool = Field(
        default=True,
        description="fit the video to the uplink: a ladder of steps with their bitrates, "
        "document camera first, then the face camera, never the voice (booth_client.degrade)",
    )
    voice_bitrate: int = Field(
        default=28_000,
        ge=6_000,
        le=64_000,
        description="the participant's voice: mono Opus at this many bits a second (at most "
        "what the console asks for)",
    )
    voice_fec: bool = Field(
        default=True,
        description="Opus in-band FEC (a lost voice packet is rebuilt from the next one), "
        "when the console's decoder uses it",
    )
    health: str | None = Field(
        default=None, description="HOST:PORT for GET /healthz (e.g. 127.0.0.1:9110); unset: off"
    )
    log_level: str = "INFO"
    language: Language = Language.INDONESIAN
    # What the synthetic participant checks in with. A real kiosk asks the participant.
    booking_code: str | None = None
    # Unset: a synthetic participant derived from the booth id, so that demo booths stand
    # for different people (one NIK's open claim is shared by whoever checks in with it).
    walk_in_nik: str | None = None
    walk_in_kpj: str | None = None
    walk_in_claim_type: ClaimType = ClaimType.RESIGNATION
    needs_assistance: bool = False
    synthetic_portrait: Path | None = Field(
        default=None,
        description="synthetic participant: a portrait (JPEG or PNG) their face still shows "
        "and their KTP carries (its other fields are the member their NIK and KPJ stand "
        "for); unset: no face in view",
    )
    show_documents: bool = Field(
        default=False,
        description="synthetic participant: once media is up, send a picture of every "
        "document the claim still needs (demo)",
    )
    documents_after_s: float = Field(default=3.0, ge=0, description="delay before that")
    rejoin_after_session: bool = Field(
        default=True, description="check the next (synthetic) participant in after a session"
    )
    # Front of house: participants take a ticket at the desk and are called to a booth.
    ticket_participant: bool = Field(
        default=False,
        description="synthetic participant: comes when a ticket is called to this booth and "
        "confirms its number (instead of checking in by itself)",
    )
    ticket_absent: CommaList = Field(
        default_factory=list,
        description="synthetic participant: ticket numbers nobody comes for (no-show drills)",
    )
    ticket_confirm_after_s: float = Field(
        default=1.0, ge=0, description="seconds the called participant takes to reach the booth"
    )
    ice_host_addresses: CommaList = Field(
        default_factory=list, description="local addresses offered to peers; empty = all"
    )
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
        "<state_dir>/outbox",
    )
    state_dir: Path | None = Field(
        default=None,
        description="the kiosk's state (its visit's resume token; the outbox unless "
        "outbox_dir says otherwise); default the outbox's parent directory if outbox_dir is "
        "set, else ~/.local/state/loket-booth/<booth>",
    )
    upload_chunk_bytes: int = Field(
        default=64 * 1024,
        ge=16 * 1024,
        le=256 * 1024,
        description="a picture larger than this goes in resumable chunks of this size "
        "(a cut line costs at most one chunk again)",
    )
    check_in_retry_s: float = Field(
        default=10.0, gt=0, description="retry a check-in refused for a passing server fault"
    )
    recording: RecordingConfig = Field(
        default_factory=RecordingConfig,
        description="sessions recorded as evidence (booth_client.recording)",
    )

    @model_validator(mode="before")
    @classmethod
    def _face_shorthand(cls, data: Any) -> Any:
        """`width`, `height`, `fps` at the top level are the face camera's (the synthetic
        scene's size before cameras were configurable; tests and demos still say so)."""
        if not isinstance(data, dict) or not {"width", "height", "fps"} & data.keys():
            return data
        data = dict(data)
        face = dict(data.get("face_camera") or {})
        for key in ("width", "height", "fps"):
            if key in data:
                face.setdefault(key, data.pop(key))
        data["face_camera"] = face
        return data

    @field_validator("speak_pattern")
    @classmethod
    def _valid_pattern(cls, value: str) -> str:
        from booth_client.sources.synthetic import SpeakPattern

        SpeakPattern.parse(value)  # ValueError names the accepted forms
        return value

    @field_validator("health")
    @classmethod
    def _valid_health(cls, value: str | None) -> str | None:
        if value:
            health_address(value)
        return value or None

    @model_validator(mode="after")
    def _devices_named(self) -> BoothConfig:
        if self.source == "file" and not self.face_camera.device:
            raise ValueError("source=file needs face_camera.device: the video file to loop")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags, then the environment, then the --config file.
        return (init_settings, env_settings, _FileSource(settings_cls), file_secret_settings)

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


def health_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` (or `[v6]:PORT`) -> (host, port); ValueError says the form."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"health {text!r}: use HOST:PORT, e.g. 127.0.0.1:9110")
    return host.strip("[]"), int(port)


# --- the --config file -------------------------------------------------------------------

_file_values: ContextVar[dict[str, Any] | None] = ContextVar("booth_config_file", default=None)


class _FileSource(PydanticBaseSettingsSource):
    """The values of the --config file being loaded (BoothConfig.load), lowest priority
    after defaults."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return (_file_values.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_file_values.get() or {})


@contextmanager
def _reading(values: dict[str, Any]) -> Iterator[None]:
    token = _file_values.set(values)
    try:
        yield
    finally:
        _file_values.reset(token)


class ConfigError(Exception):
    """The kiosk's configuration is unusable; `str()` names the file and field and says
    what to do. Exit code 2."""


def load_config(path: Path | None, **flags: Any) -> BoothConfig:
    """BoothConfig from `path` (TOML, optional), the environment and `flags` (highest).
    Raises ConfigError with one line per problem."""
    values: dict[str, Any] = {}
    where = str(path) if path is not None else "booth settings"
    if path is not None:
        try:
            with open(path, "rb") as f:
                values = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(
                f"{path}: no such file; give --config the kiosk's TOML file "
                "(deploy/booth.example.toml shows every field)"
            ) from None
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: not readable TOML: {exc}") from None
        unknown = sorted(set(values) - set(BoothConfig.model_fields))
        if unknown:
            raise ConfigError(
                f"{path}: unknown field(s) {', '.join(unknown)}; "
                f"`loket booth --help` and deploy/booth.example.toml list the fields"
            )
    flags = {k: v for k, v in flags.items() if v is not None}
    try:
        with _reading(values):
            return BoothConfig(**flags)
    except ValidationError as exc:
        raise ConfigError("\n".join(_explain(exc, where, values, flags))) from None


def _explain(
    exc: ValidationError, where: str, file_values: dict[str, Any], flags: dict[str, Any]
) -> Iterator[str]:
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        field = ".".join(loc) or "booth"
        env = ENV_PREFIX + "__".join(loc).upper()
        top = loc[0] if loc else ""
        if top in flags:
            origin = "its flag"
        elif env in os.environ or (top and ENV_PREFIX + top.upper() in os.environ):
            origin = env
        elif top in file_values:
            origin = where
        else:
            origin = None
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            hint = f"set it in {where} or as {env}"
            if top == "credential":
                hint = (
                    f"set {env}=lkb_... (in the service's EnvironmentFile) or pass "
                    "--credential; `loket booth enrol` prints one"
                )
            yield f"{where}: {field}: missing; {hint}"
        elif origin is None:
            yield f"{where}: {field}: {message}"
        else:
            yield f"{origin}: {field}: {message} (fix it there, or override it with {env})"
