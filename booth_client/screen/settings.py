"""Kiosk screen settings: `LOKET_KIOSK_*` environment variables, flags on top (`loket booth`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ScreenSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOKET_KIOSK_", extra="ignore")

    mode: Literal["window", "headless", "none"] = Field(
        default="none",
        description="window: full screen on the kiosk's display; headless: the same screens "
        "as PNG files in out_dir (tests, screenshots, a kiosk without a display); none",
    )
    participant: Literal["screen", "synthetic"] | None = Field(
        default=None,
        description="who checks in: the person at the screen, or the synthetic demo "
        "participant; unset: the screen whenever there is one",
    )
    out_dir: Path | None = Field(
        default=None, description="headless: where the PNGs go (default ./kiosk-screen)"
    )
    width: int = Field(default=1280, ge=640, le=3840, description="window/headless size")
    height: int = Field(default=800, ge=480, le=2160)
    fullscreen: bool = Field(default=True, description="window mode: take the whole display")
    fps: float = Field(default=15.0, gt=0, le=60, description="redraws per second at most")
    idle_reset_s: float = Field(
        default=90.0,
        gt=0,
        description="untouched this long on the check-in form or the end screen: back to "
        "the language screen, the form emptied, for the next person",
    )
    capture_countdown_s: float = Field(
        default=3.0, ge=0, le=10, description="countdown before a document picture is taken"
    )
    capture_retry_countdown_s: float = Field(
        default=2.0, ge=0, le=10, description="... and before each retry, to follow the advice"
    )
    capture_result_s: float = Field(
        default=5.0, ge=0, description="how long the sent picture stays on screen"
    )
    officer_video_stale_s: float = Field(
        default=2.0, gt=0, description="no officer frame for this long: show a placeholder"
    )
    png_every_s: float = Field(
        default=1.0, gt=0, description="headless: rewrite current.png at most this often"
    )
    png_keep: int = Field(
        default=200, ge=1, description="headless: numbered screen-change PNGs kept at most"
    )

    @property
    def screen_participant(self) -> bool:
        """Whether the person at the screen checks in (rather than the synthetic one)."""
        if self.participant is not None:
            return self.participant == "screen"
        return self.mode != "none"
