"""The kiosk's recording settings (`[recording]` in booth.toml, LOKET_BOOTH_RECORDING__*)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from booth_client.recording.media import EvidenceFormat


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

    def evidence_format(self) -> EvidenceFormat:
        return EvidenceFormat(
            cell_width=self.cell_width // 2 * 2,
            cell_height=self.cell_height // 2 * 2,
            fps=self.fps,
            video_bps=self.video_bps,
            audio_bps=self.audio_bps,
        )
