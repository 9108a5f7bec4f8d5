"""The kiosk screen's loop: pygame events in, the client observed, a ScreenModel drawn.

It runs on the client's event loop (pygame wants the thread that opened the window; a
frame here takes a few milliseconds, and media runs in aiortc's own tasks), at
`ScreenSettings.fps` at most. Headless, the same frames go to PNG files: `current.png`
now and then, and a numbered file each time the screen changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import structlog

from booth_client.screen.model import (
    CALL_SCREENS,
    Action,
    Back,
    Backspace,
    Effect,
    ForgetParticipant,
    Key,
    Kiosk,
    Next,
    Screen,
    ScreenModel,
    SubmitCheckIn,
)
from booth_client.screen.observe import CaptureWatch, ClientObserver, SelfView
from booth_client.screen.render import Hit, Renderer, pygame
from booth_client.screen.settings import ScreenSettings

if TYPE_CHECKING:
    from booth_client.client import BoothClient, Participant

log = structlog.get_logger("loket.booth.screen")


class ScreenUnavailable(Exception):
    """The window could not be opened (no display, no video driver): say so and stop, or
    run with `mode=headless`."""


def add_screen(client: BoothClient, options: ScreenSettings) -> KioskScreen | None:
    """Attach the participant's screen to `client` (call from async code, before or after
    `client.run()` starts). Returns the running screen, or None for `mode=none`; `await
    screen.close()` when the client has stopped. Raises ScreenUnavailable."""
    if options.screen_participant:
        client.attach_screen()
    if options.mode == "none":
        return None
    screen = KioskScreen(client, options)
    screen.start()
    return screen


class KioskScreen:
    def __init__(
        self,
        client: BoothClient,
        settings: ScreenSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.settings = settings
        self._clock = clock
        now = clock()
        self.kiosk = Kiosk(
            idle_reset_s=settings.idle_reset_s,
            capture_result_s=settings.capture_result_s,
            now=now,
        )
        self.watch = CaptureWatch(
            client.capture_agent,
            countdown_s=settings.capture_countdown_s,
            retry_countdown_s=settings.capture_retry_countdown_s,
            clock=clock,
        )
        self.self_view = SelfView(client)
        self.observer = ClientObserver(
            client, self.watch, self.self_view, officer_stale_s=settings.officer_video_stale_s
        )
        self.model: ScreenModel | None = None
        self.hits: list[Hit] = []
        self.saved: list[Path] = []  # headless: the numbered PNGs, oldest first
        self._surface: pygame.Surface | None = None
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._drawn_key: tuple[object, ...] | None = None
        self._drawn_at = -1e9
        self._png_at = -1e9

    @property
    def headless(self) -> bool:
        return self.settings.mode == "headless"

    @property
    def out_dir(self) -> Path:
        return self.settings.out_dir or Path("kiosk-screen")

    # --- lifecycle ---

    def open(self) -> None:
        """Open the window (or the headless surface) and load the renderer."""
        if self.headless:
            # SDL's dummy driver: a real event queue and surface, no display needed.
            os.environ["SDL_VIDEODRIVER"] = "dummy"
            self.out_dir.mkdir(parents=True, exist_ok=True)
        size = (self.settings.width, self.settings.height)
        flags = pygame.FULLSCREEN if self.settings.fullscreen and not self.headless else 0
        try:
            pygame.display.init()
            self._surface = pygame.display.set_mode((0, 0) if flags else size, flags)
        except pygame.error as exc:
            raise ScreenUnavailable(
                f"the kiosk screen cannot open a window: {exc} (is DISPLAY set? "
                "--screen headless draws to PNG files instead)"
            ) from exc
        driver = pygame.display.get_driver()
        if not self.headless and driver in ("offscreen", "dummy"):
            # SDL falls back to drawing nowhere: a kiosk would look dead, so refuse.
            pygame.display.quit()
            raise ScreenUnavailable(
                f"no display for the kiosk screen (SDL chose {driver!r}): is DISPLAY or "
                "WAYLAND_DISPLAY set? --screen headless draws to PNG files instead"
            )
        pygame.display.set_caption("Loket")
        if not self.headless:
            pygame.mouse.set_visible(not self.settings.fullscreen)  # a touch kiosk: no pointer
        self._renderer = Renderer()

    def start(self) -> None:
        self.open()
        self._task = asyncio.get_running_loop().create_task(self.run(), name="kiosk-screen")

    async def run(self) -> None:
        period = 1.0 / self.settings.fps
        try:
            while True:
                started = self._clock()
                try:
                    self.step()
                except Exception:  # a drawing fault must not take the kiosk down
                    log.exception("screen_step_failed")
                await asyncio.sleep(max(0.005, period - (self._clock() - started)))
        finally:
            self.self_view.stop()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.self_view.stop()
        pygame.display.quit()

    # --- one frame ---

    def step(self) -> ScreenModel:
        """Read input, observe the client, draw if anything changed; returns the model."""
        now = self._clock()
        for event in pygame.event.get():
            for action in self._actions(event):
                self._carry_out(self.kiosk.press(action, now))
            if event.type == pygame.QUIT:
                self._spawn(self.client.stop())
        self._carry_out(self.kiosk.observe(self.observer.snapshot(now), now))
        model = self.kiosk.model(now)
        self._media(model)
        self.model = model
        self._draw(model, now)
        return model

    def _media(self, model: ScreenModel) -> None:
        in_call = model.screen in CALL_SCREENS or (
            model.screen is Screen.RECONNECTING and self.client.peer_state == "connected"
        )
        self.self_view.want(in_call)
        if not in_call and model.screen is not Screen.RECONNECTING:
            self.watch.forget()  # no document picture outlives the call

    def _draw(self, model: ScreenModel, now: float) -> None:
        assert self._surface is not None
        key = _key(model)
        changed = key != self._drawn_key
        if self.headless and not changed and now - self._drawn_at < self.settings.png_every_s:
            return  # nobody watches a headless spinner: draw on change, or to refresh
        self.hits = self._renderer.draw(self._surface, model, self.observer.image, now)
        self._drawn_at = now
        if not self.headless:
            pygame.display.flip()
            self._drawn_key = key
            return
        if changed:
            self._save(self._numbered(model))
        if changed or now - self._png_at >= self.settings.png_every_s:
            self._save(self.out_dir / "current.png")
            self._png_at = now
        self._drawn_key = key

    def _numbered(self, model: ScreenModel) -> Path:
        serial = (int(self.saved[-1].name.split("-")[0]) + 1) if self.saved else 1
        path = self.out_dir / f"{serial:05d}-{model.screen.value}-{model.language.value}.png"
        self.saved.append(path)
        while len(self.saved) > self.settings.png_keep:
            with contextlib.suppress(FileNotFoundError):
                self.saved.pop(0).unlink()
        return path

    def _save(self, path: Path) -> None:
        assert self._surface is not None
        temporary = path.with_name(f".{path.name}.tmp.png")
        pygame.image.save(self._surface, str(temporary))
        temporary.replace(path)  # a reader never sees half a file

    # --- input and effects ---

    def _actions(self, event: pygame.event.Event) -> list[Action]:
        if event.type == pygame.MOUSEBUTTONDOWN and event.button == 1:
            return self._hit(event.pos)
        if event.type == pygame.FINGERDOWN and self._surface is not None:
            w, h = self._surface.get_size()
            return self._hit((round(event.x * w), round(event.y * h)))
        if event.type != pygame.KEYDOWN:
            return []
        if event.key in (pygame.K_RETURN, pygame.K_KP_ENTER):
            return [Next()]
        if event.key == pygame.K_BACKSPACE:
            return [Backspace()]
        if event.key == pygame.K_ESCAPE:
            return [Back()]
        char = _KEY_CHARS.get(event.key)
        return [Key(char)] if char is not None else []

    def _hit(self, pos: tuple[int, int]) -> list[Action]:
        # The last drawn wins: keys and choices are drawn over their panels.
        for hit in reversed(self.hits):
            if hit.rect.collidepoint(pos):
                return [hit.action]
        return []

    def where(self, action: Action) -> tuple[int, int]:
        """The centre of the button for `action` as last drawn (tests tap it)."""
        for hit in self.hits:
            if hit.action == action:
                return hit.rect.center
        raise LookupError(f"no button for {action} on {self.model and self.model.screen}")

    def _carry_out(self, effects: list[Effect]) -> None:
        from booth_client.client import Participant

        for effect in effects:
            match effect:
                case SubmitCheckIn(claim, language, None):
                    self._spawn(self.client.check_in_participant(Participant(claim, language)))
                case SubmitCheckIn(claim, language, answer) if answer is not None:
                    self._spawn(self._consented(Participant(claim, language), answer))
                case ForgetParticipant():
                    self.client.forget_participant()
                    self.watch.forget()

    async def _consented(self, who: Participant, answer: Literal["given", "refused"]) -> None:
        """Recording answered (issue 23): check in, or (refused, policy in person) say
        where to go instead."""
        years = self.kiosk.client.recording_years
        if await self.client.recording.answer(answer, who.language, who.claim, years):
            await self.client.check_in_participant(who)
        else:
            self.kiosk.consent_refused(self.client.recording.refused or "", self._clock())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _key(model: ScreenModel) -> tuple[object, ...]:
    """What makes a new headless PNG: the screen, its words, and the pictures shown."""
    return (model.screen, model.language, model.text(), tuple(m.available for m in model.media))


# Key codes, not text events: the same keys whatever the keyboard layout or input method.
_KEY_CHARS: dict[int, str] = {
    **{getattr(pygame, f"K_{d}"): d for d in "0123456789"},
    **{getattr(pygame, f"K_KP{d}"): d for d in "0123456789"},
    **{getattr(pygame, f"K_{c}"): c.upper() for c in "abcdefghijklmnopqrstuvwxyz"},
    pygame.K_MINUS: "-",
    pygame.K_KP_MINUS: "-",
}
