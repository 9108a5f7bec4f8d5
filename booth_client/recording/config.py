"""The kiosk's recording settings (`[recording]` in booth.toml, LOKET_BOOTH_RECORDING__*)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from booth_client.recording.media import EvidenceFormat

MAX_SEGMENT_BYTES = 4 * 2**20


class RecordingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=False,
        description="record sessions as evidence (with the participant's consent, asked "
        "before check-in); what is recorded is delivered even if this is later turned off",
    )
    consent: Literal["given", "refused"] = Field(
        default="given",
        description="the synthetic participant's answer (a kiosk with a screen asks the "
        "person at it, whatever this says)",
    )
    segment_s: float = Field(default=10.0, ge=2.0, le=60.0, description="seconds a segment")
    fps: float = Field(default=5.0, gt=0, le=15.0, description="pictures a second")
    cell_width: int = Field(default=320, ge=64, le=960, description="each face's width")
    cell_height: int = Field(default=240, ge=48, le=720, description="each face's height")
    video_bps: int = Field(default=120_000, ge=20_000, le=2_000_000)
    audio_bps: int = Field(default=48_000, ge=12_000, le=256_000, description="both voices")
    min_free_bytes: int = Field(
        default=256 * 2**20,
        ge=0,
        description="below this much free disk no segment is written (a gap, an alert); "
        "recording resumes by itself when there is room again",
    )
    during_call_bps: int = Field(
        default=320_000,
        ge=16_000,
        description="upload rate during a call while the line's capacity is not yet known "
        "(once it is: what the call leaves of it)",
    )

    @model_validator(mode="after")
    def _segment_fits(self) -> RecordingConfig:
        # The server takes segments of up to 4 MB by default
        # (LOKET_MAX_RECORDING_SEGMENT_BYTES); VP8 may overshoot its rate by half.
        expected = (self.video_bps + self.audio_bps) / 8 * self.segment_s * 1.5
        if expected > MAX_SEGMENT_BYTES:
            raise ValueError(
                f"a {self.segment_s:g} s segment at {self.video_bps + self.audio_bps} bit/s may "
                f"reach {expected / 2**20:.1f} MB, more than the server takes "
                f"({MAX_SEGMENT_BYTES / 2**20:.0f} MB): lower the rates or segment_s"
            )
        return self

    def evidence_format(self) -> EvidenceFormat:
        return EvidenceFormat(
            cell_width=self.cell_width // 2 * 2,
            cell_height=self.cell_height // 2 * 2,
            fps=self.fps,
            video_bps=self.video_bps,
            audio_bps=self.audio_bps,
        )
