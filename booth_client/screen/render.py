"""Drawing a ScreenModel with pygame: one layout per screen, scaled to any display.

The renderer decides nothing: it lays out what the model says and returns where each
button landed (`Hit`), so taps and clicks map back to the model's actions. Layouts are
designed at 1280x800 and scaled by the smaller ratio, centred across wider screens.
Video slots never stay black: without a picture they draw a placeholder with its text.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import numpy as np
import pygame

from booth_client.screen.model import (
    Action,
    Banner,
    ButtonView,
    FieldView,
    MediaSlot,
    MediaSource,
    Screen,
    ScreenModel,
)

FONTS = Path(__file__).resolve().parent / "fonts"
BASE_W, BASE_H = 1280, 800
Colour = tuple[int, int, int]

INK: Colour = (27, 31, 35)
MUTED: Colour = (84, 92, 102)
PAPER: Colour = (244, 246, 248)
WHITE: Colour = (255, 255, 255)
HEADER: Colour = (11, 61, 92)
PRIMARY: Colour = (0, 110, 58)  # dark green: white text on it is 6.5:1
PRIMARY_LIGHT: Colour = (226, 242, 232)
LINE: Colour = (196, 204, 212)
VIDEO_BG: Colour = (38, 44, 52)
TONES: dict[str, tuple[Colour, Colour]] = {  # (background, text)
    "info": ((227, 239, 250), (11, 61, 92)),
    "warning": ((255, 240, 209), (110, 60, 0)),
    "error": ((253, 228, 228), (150, 20, 30)),
    "success": ((224, 242, 230), (0, 90, 45)),
}

MediaImages = Callable[[MediaSource], np.ndarray | None]


@dataclass(frozen=True)
class Hit:
    rect: pygame.Rect
    action: Action


class Renderer:
    def __init__(self) -> None:
        pygame.font.init()
        self._fonts: dict[tuple[int, bool], pygame.font.Font] = {}
        self._u = 1.0
        self._origin = (0, 0)
        self.overflows: list[str] = []  # texts that did not fit their box (tests read it)

    # --- scaling, fonts, text ---

    def _font(self, size: int, bold: bool = False) -> pygame.font.Font:
        px = max(8, round(size * self._u))
        key = (px, bold)
        if key not in self._fonts:
            name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
            self._fonts[key] = pygame.font.Font(str(FONTS / name), px)
        return self._fonts[key]

    def _r(self, x: float, y: float, w: float, h: float) -> pygame.Rect:
        """A rectangle in design units (1280x800) on the real surface."""
        u, (ox, oy) = self._u, self._origin
        return pygame.Rect(round(ox + x * u), round(oy + y * u), round(w * u), round(h * u))

    def _wrap(self, text: str, font: pygame.font.Font, width: int) -> list[str]:
        lines: list[str] = []
        for paragraph in text.split("\n"):
            line = ""
            for word in paragraph.split(" "):
                trial = f"{line} {word}".strip()
                if font.size(trial)[0] <= width or not line:
                    line = trial
                else:
                    lines.append(line)
                    line = word
            lines.append(line)
        return lines

    def _text(
        self,
        surface: pygame.Surface,
        text: str,
        box: pygame.Rect,
        *,
        size: int,
        bold: bool = False,
        colour: Colour = INK,
        align: str = "left",
        max_lines: int = 6,
    ) -> int:
        """Wrapped text in `box` from its top, shrunk until it fits; returns the bottom."""
        for step in range(8):
            font = self._font(max(10, size - 2 * step), bold)
            lines = self._wrap(text, font, box.width)
            height = len(lines) * font.get_linesize()
            wide = max(font.size(line)[0] for line in lines) > box.width
            if len(lines) <= max_lines and height <= box.height and not wide:
                break
        else:
            self.overflows.append(text)  # cut off even at the smallest size: a layout bug
        y = box.top
        for line in lines:
            image = font.render(line, True, colour)
            x = {
                "left": box.left,
                "center": box.centerx - image.get_width() // 2,
                "right": box.right - image.get_width(),
            }[align]
            surface.blit(image, (x, y))
            y += font.get_linesize()
        return y

    # --- the screen ---

    def draw(
        self, surface: pygame.Surface, model: ScreenModel, images: MediaImages, now: float
    ) -> list[Hit]:
        w, h = surface.get_size()
        self._u = min(w / BASE_W, h / BASE_H)
        # Centred across, at the top: a taller screen gets room at the bottom, not a gap
        # above the header.
        self._origin = ((w - round(BASE_W * self._u)) // 2, 0)
        surface.fill(PAPER)
        hits: list[Hit] = []
        top = self._header(surface, model, hits)
        if model.banner is not None:
            band = self._r(0, top, BASE_W, 56)
            self._banner(surface, model.banner, band.inflate(w - band.width, 0), full=True)
            top += 56
        body = (top + 24, BASE_H - 128)  # the footer holds the navigation buttons
        layout = _LAYOUTS.get(model.screen, Renderer._centred)
        layout(self, surface, model, images, now, body, hits)
        self._footer(surface, model, hits)
        return hits

    def _header(self, surface: pygame.Surface, model: ScreenModel, hits: list[Hit]) -> int:
        band = self._r(0, 0, BASE_W, 84)
        pygame.draw.rect(surface, HEADER, band.inflate(surface.get_width() - band.width, 0))
        self._text(surface, "Loket", self._r(32, 22, 150, 44), size=30, bold=True, colour=WHITE)
        # Where the participant is: five steps, the current one lit.
        x = 160
        for index, label in enumerate(model.steps, start=1):
            current = index == model.step
            done = index < model.step
            dot = self._r(x, 28, 28, 28)
            fill = WHITE if current else (120, 160, 185) if done else (40, 90, 120)
            pygame.draw.ellipse(surface, fill, dot)
            number = "✓" if done else str(index)
            self._text(surface, number, dot.move(0, round(3 * self._u)), size=16, bold=True,
                       colour=HEADER if current or done else WHITE, align="center")  # fmt: skip
            colour = WHITE if current else (175, 200, 215)
            self._text(surface, label, self._r(x + 34, 31, 98, 26), size=16,
                       bold=current, colour=colour, max_lines=1)  # fmt: skip
            x += 138
        languages = [b for b in model.buttons if b.place == "lang"]
        lx = BASE_W - 24 - 200 * len(languages)
        for button in languages:
            rect = self._r(lx + 8, 18, 192, 48)
            hits.append(Hit(rect, button.action))
            fill = WHITE if button.selected else HEADER
            pygame.draw.rect(surface, fill, rect, border_radius=round(24 * self._u))
            pygame.draw.rect(surface, WHITE, rect, width=max(1, round(2 * self._u)),
                             border_radius=round(24 * self._u))  # fmt: skip
            self._text(surface, button.label, rect.inflate(-8, 0).move(0, round(12 * self._u)),
                       size=18, bold=button.selected, max_lines=1,
                       colour=HEADER if button.selected else WHITE, align="center")  # fmt: skip
            lx += 200
        return 84

    def _banner(self, surface: pygame.Surface, banner: Banner, rect: pygame.Rect,
                *, full: bool = False) -> int:  # fmt: skip
        """A coloured message; inside the content (not `full`) it is as tall as its text,
        at most `rect.height`. Returns its bottom."""
        background, ink = TONES[banner.tone]
        pad_x, pad_y = round(24 * self._u), round(12 * self._u)
        if not full:
            font = self._font(22, True)
            lines = self._wrap(banner.text, font, rect.width - 2 * pad_x)
            wanted = len(lines) * font.get_linesize() + 2 * pad_y
            rect = pygame.Rect(rect.left, rect.top, rect.width, min(rect.height, wanted))
        pygame.draw.rect(surface, background, rect, border_radius=0 if full else 12)
        pygame.draw.rect(surface, ink, pygame.Rect(rect.left, rect.top, round(8 * self._u),
                                                   rect.height))  # fmt: skip
        inner = rect.inflate(-2 * pad_x, -2 * pad_y)
        self._text(surface, banner.text, inner, size=22, bold=True, colour=ink,
                   max_lines=2 if full else 4)  # fmt: skip
        return rect.bottom

    def _footer(self, surface: pygame.Surface, model: ScreenModel, hits: list[Hit]) -> None:
        for button in model.buttons:
            if button.place == "nav":
                self._button(surface, button, self._r(40, BASE_H - 104, 240, 80), hits)
            elif button.place == "primary":
                self._button(surface, button, self._r(BASE_W - 400, BASE_H - 104, 360, 80), hits)

    def _button(self, surface: pygame.Surface, button: ButtonView, rect: pygame.Rect,
                hits: list[Hit], *, size: int = 26) -> None:  # fmt: skip
        hits.append(Hit(rect, button.action))
        strong = button.place == "primary" or button.selected
        radius = round(14 * self._u)
        pygame.draw.rect(surface, PRIMARY if strong else WHITE, rect, border_radius=radius)
        pygame.draw.rect(surface, PRIMARY if strong else LINE, rect,
                         width=max(1, round(2 * self._u)), border_radius=radius)  # fmt: skip
        ink = WHITE if strong else INK
        inner = rect.inflate(-round(24 * self._u), -round(12 * self._u))
        if button.sublabel:
            label_font = self._font(size, True)
            y = inner.top + (inner.height - label_font.get_linesize() * 2 - 12) // 2
            bottom = self._text(surface, button.label, pygame.Rect(inner.left, y, inner.width,
                                inner.height), size=size, bold=True, colour=ink, align="center",
                                max_lines=2)  # fmt: skip
            self._text(surface, button.sublabel, pygame.Rect(inner.left, bottom + 6, inner.width,
                       inner.bottom - bottom), size=size - 8,
                       colour=WHITE if strong else MUTED, align="center", max_lines=2)  # fmt: skip
            return
        font = self._font(size, True)
        lines = self._wrap(button.label, font, inner.width)
        height = len(lines) * font.get_linesize()
        box = pygame.Rect(inner.left, inner.centery - height // 2, inner.width, height + 4)
        self._text(surface, button.label, box, size=size, bold=True, colour=ink,
                   align="center", max_lines=3)  # fmt: skip

    def _title(self, surface: pygame.Surface, model: ScreenModel, box: pygame.Rect,
               *, align: str = "left", size: int = 38) -> int:  # fmt: skip
        bottom = self._text(surface, model.title, box, size=size, bold=True, align=align,
                            max_lines=3)  # fmt: skip
        for line in model.lines:
            rest = pygame.Rect(box.left, bottom + round(14 * self._u), box.width,
                               max(0, box.bottom - bottom))  # fmt: skip
            bottom = self._text(surface, line, rest, size=24, colour=MUTED, align=align)
        return bottom

    def _spinner(self, surface: pygame.Surface, centre: tuple[float, float], now: float) -> None:
        rect = self._r(centre[0] - 36, centre[1] - 36, 72, 72)
        start = (now * 4.0) % (2 * math.pi)
        pygame.draw.arc(surface, LINE, rect, 0, 2 * math.pi, max(2, round(8 * self._u)))
        pygame.draw.arc(surface, PRIMARY, rect, start, start + 1.8, max(2, round(8 * self._u)))

    def _media(self, surface: pygame.Surface, slot: MediaSlot, rect: pygame.Rect,
               images: MediaImages) -> None:  # fmt: skip
        pixels = images(slot.source) if slot.available else None
        pygame.draw.rect(surface, VIDEO_BG, rect, border_radius=round(12 * self._u))
        if pixels is not None:
            frame = pygame.image.frombuffer(np.ascontiguousarray(pixels).tobytes(),
                                            (pixels.shape[1], pixels.shape[0]), "RGB")  # fmt: skip
            scale = min(rect.width / pixels.shape[1], rect.height / pixels.shape[0])
            size = (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale)))
            fitted = pygame.transform.smoothscale(frame, size)
            surface.blit(fitted, fitted.get_rect(center=rect.center))
        else:
            # A person's outline and the placeholder text: never a black box.
            cx, cy, s = rect.centerx, rect.centery, min(rect.width, rect.height)
            grey = (92, 102, 114)
            pygame.draw.circle(surface, grey, (cx, cy - s // 7), s // 8)
            shoulders = pygame.Rect(0, 0, s // 2, s // 4)
            shoulders.midtop = (cx, cy + s // 50)
            pygame.draw.ellipse(surface, grey, shoulders)
            text_box = pygame.Rect(rect.left + 12, cy + s // 4, rect.width - 24, rect.height // 4)
            self._text(surface, slot.placeholder, text_box, size=20 if s > 300 else 14,
                       colour=WHITE, align="center", max_lines=2)  # fmt: skip
        if slot.caption:
            font = self._font(18 if rect.height > 300 else 14, True)
            label = font.render(slot.caption, True, WHITE)
            pad = round(8 * self._u)
            back = pygame.Rect(rect.left + pad, rect.bottom - label.get_height() - 3 * pad,
                               label.get_width() + 2 * pad, label.get_height() + pad)  # fmt: skip
            pygame.draw.rect(surface, (0, 0, 0), back, border_radius=pad)
            surface.blit(label, (back.left + pad, back.top + pad // 2))

    def _field(self, surface: pygame.Surface, view: FieldView, rect: pygame.Rect,
               hits: list[Hit], now: float) -> None:  # fmt: skip
        from booth_client.screen.model import FocusField

        label_box = pygame.Rect(rect.left, rect.top, rect.width, round(30 * self._u))
        self._text(surface, view.label, label_box, size=20, bold=True, max_lines=1)
        box = pygame.Rect(rect.left, rect.top + round(32 * self._u), rect.width,
                          round(60 * self._u))  # fmt: skip
        hits.append(Hit(box, FocusField(view.name)))
        edge = (190, 30, 45) if view.problem else PRIMARY if view.active else LINE
        pygame.draw.rect(surface, WHITE, box, border_radius=round(10 * self._u))
        pygame.draw.rect(surface, edge, box, width=max(1, round((4 if view.active else 2) *
                         self._u)), border_radius=round(10 * self._u))  # fmt: skip
        shown = _grouped(view.value) if view.name in ("nik", "kpj") else view.value
        font = self._font(28, True)
        image = font.render(shown, True, INK)
        x, y = box.left + round(16 * self._u), box.centery - image.get_height() // 2
        surface.blit(image, (x, y))
        if view.active and view.name != "claim_type" and int(now * 2) % 2 == 0:
            caret_x = x + image.get_width() + round(3 * self._u)
            pygame.draw.line(surface, PRIMARY, (caret_x, y + 2), (caret_x, y + image.get_height()
                             - 2), max(1, round(3 * self._u)))  # fmt: skip
        below = pygame.Rect(rect.left, box.bottom + round(4 * self._u), rect.width,
                            round(28 * self._u))  # fmt: skip
        if view.problem:
            self._text(surface, view.problem, below.inflate(0, round(24 * self._u)).move(
                0, round(12 * self._u)), size=17, bold=True, colour=(170, 20, 35),
                max_lines=2)  # fmt: skip
        else:
            self._text(surface, view.hint, below, size=17, colour=MUTED, max_lines=1)

    def _keypad(self, surface: pygame.Surface, rows: tuple[tuple[ButtonView, ...], ...],
                area: pygame.Rect, hits: list[Hit]) -> None:  # fmt: skip
        gap = round(10 * self._u)
        columns = max(len(r) for r in rows)
        key_w = (area.width - gap * (columns - 1)) // columns
        key_h = min(key_w, (area.height - gap * (len(rows) - 1)) // len(rows))
        for r, row in enumerate(rows):
            # Rows shorter than the widest are centred, as on a keyboard.
            x = area.left + (area.width - (len(row) * key_w + (len(row) - 1) * gap)) // 2
            for key in row:
                rect = pygame.Rect(x, area.top + r * (key_h + gap), key_w, key_h)
                self._button(surface, key, rect, hits,
                             size=26 if len(key.label) == 1 else 18)  # fmt: skip
                x += key_w + gap

    # --- layouts per screen ---

    def _centred(self, surface: pygame.Surface, model: ScreenModel, images: MediaImages,
                 now: float, body: tuple[int, int], hits: list[Hit]) -> None:  # fmt: skip
        top, bottom = body
        y = top + 40
        if model.busy:
            self._spinner(surface, (BASE_W / 2, top + 70), now)
            y = top + 140
        end = self._title(surface, model, self._r(140, y, BASE_W - 280, bottom - y),
                          align="center")  # fmt: skip
        if model.notice is not None:
            design_end = (end - self._origin[1]) / self._u
            self._banner(surface, model.notice, self._r(240, design_end + 30, BASE_W - 480, 72))

    def _choices(self, surface: pygame.Surface, model: ScreenModel, images: MediaImages,
                 now: float, body: tuple[int, int], hits: list[Hit]) -> None:  # fmt: skip
        top, _ = body
        end = self._title(surface, model, self._r(140, top + 30, BASE_W - 280, 180),
                          align="center", size=40)  # fmt: skip
        design_end = (end - self._origin[1]) / self._u
        choices = [b for b in model.buttons if b.place == "choice"]
        width, gap = 440, 40
        x = (BASE_W - (len(choices) * width + (len(choices) - 1) * gap)) / 2
        for button in choices:
            self._button(surface, button, self._r(x, design_end + 50, width, 200), hits, size=30)
            x += width + gap

    def _booking(self, surface: pygame.Surface, model: ScreenModel, images: MediaImages,
                 now: float, body: tuple[int, int], hits: list[Hit]) -> None:  # fmt: skip
        top, bottom = body
        self._text(surface, model.title, self._r(60, top, 700, 50), size=32, bold=True,
                   max_lines=1)  # fmt: skip
        self._field(surface, model.fields[0], self._r(60, top + 56, 620, 150), hits, now)
        if model.notice is not None:
            self._banner(surface, model.notice, self._r(720, top + 56, 500, 150))
        self._keypad(surface, model.keypad, self._r(60, top + 220, BASE_W - 120,
                     bottom - top - 220), hits)  # fmt: skip

    def _walk_in(self, surface: pygame.Surface, model: ScreenModel, images: MediaImages,
                 now: float, body: tuple[int, int], hits: list[Hit]) -> None:  # fmt: skip
        top, bottom = body
        self._text(surface, model.title, self._r(60, top, 700, 50), size=32, bold=True,
                   max_lines=1)  # fmt: skip
        nik, kpj, claim = model.fields
        self._field(surface, nik, self._r(60, top + 56, 660, 130), hits, now)
        self._field(surface, kpj, self._r(60, top + 176, 660, 130), hits, now)
        # The claim type: a choice, not typed.
        label = self._r(60, top + 306, 660, 30)
        self._text(surface, claim.label, label, size=20, bold=True, max_lines=1)
        options = [b for b in model.buttons if b.place == "field"]
        for i, button in enumerate(options):
            rect = self._r(60 + (i % 3) * 224, top + 338 + (i // 3) * 74, 212, 64)
            self._button(surface, button, rect, hits, size=16)
        under = self._r(60, top + 488, 660, 30)
        if claim.problem:
            self._text(surface, claim.problem, under, size=17, bold=True, colour=(170, 20, 35),
                       max_lines=1)  # fmt: skip
        if model.notice is not None:
            self._banner(surface, model.notice, self._r(760, top, 460, 96))
            pad_top = top + 110
        else:
            pad_top = top + 40
        self._keypad(surface, model.keypad, self._r(800, pad_top, 380, bottom - pad_top), hits)

    def _waiting(self, surface: pygame.Surface, model: ScreenModel, images: MediaImages,
                 now: float, body: tuple[int, int], hits: list[Hit]) -> None:  # fmt: skip
        top, bottom = body
        if model.big is None:
            return self._centred(surface, model, images, now, body, hits)
        circle = self._r(120, top + 60, 320, 320)
        pygame.draw.ellipse(surface, PRIMARY_LIGHT, circle)
        pygame.draw.ellipse(surface, PRIMARY, circle, width=max(2, round(6 * self._u)))
        self._text(surface, model.big, self._r(120, top + 130, 320, 160), size=120, bold=True,
                   colour=PRIMARY, align="center", max_lines=1)  # fmt: skip
        self._text(surface, model.big_caption or "", self._r(100, top + 400, 360, 60), size=22,
                   colour=MUTED, align="center", max_lines=2)  # fmt: skip
        self._title(surface, model, self._r(520, top + 70, 680, bottom - top - 70))
        return None

    def _ticket(self, surface: pygame.Surface, model: ScreenModel, images: MediaImages,
                now: float, body: tuple[int, int], hits: list[Hit]) -> None:  # fmt: skip
        """The number called here, large on the left; the field and keypad on the right."""
        top, bottom = body
        self._text(surface, model.title, self._r(60, top, 1160, 50), size=32, bold=True,
                   max_lines=1)  # fmt: skip
        card = self._r(60, top + 64, 500, 250)
        pygame.draw.rect(surface, PRIMARY_LIGHT, card, border_radius=round(16 * self._u))
        self._text(surface, model.big or "", self._r(60, top + 100, 500, 150), size=120,
                   bold=True, colour=PRIMARY, align="center", max_lines=1)  # fmt: skip
        self._text(surface, model.big_caption or "", self._r(60, top + 256, 500, 40), size=22,
                   colour=MUTED, align="center", max_lines=1)  # fmt: skip
        for line in model.lines:
            self._text(surface, line, self._r(60, top + 340, 500, 110), size=22, max_lines=4)
        self._field(surface, model.fields[0], self._r(620, top + 64, 600, 120), hits, now)
        keypad_top = top + 200
        if model.notice is not None:
            keypad_top = self._banner(surface, model.notice, self._r(620, top + 196, 600, 96))
            keypad_top = round((keypad_top - self._origin[1]) / self._u) + 12
        self._keypad(surface, model.keypad, self._r(620, keypad_top, 600,
                     bottom - keypad_top), hits)  # fmt: skip

    def _talking(self, surface: pygame.Surface, model: ScreenModel, images: MediaImages,
                 now: float, body: tuple[int, int], hits: list[Hit]) -> None:  # fmt: skip
        top, bottom = body
        officer, own = model.media
        height = bottom - top + 90  # a call has no footer buttons: the video takes the room
        self._media(surface, officer, self._r(40, top, 860, height), images)
        self._media(surface, own, self._r(930, top, 310, 232), images)
        self._title(surface, model, self._r(930, top + 260, 310, height - 260), size=26)

    def _on_hold(self, surface: pygame.Surface, model: ScreenModel, images: MediaImages,
                 now: float, body: tuple[int, int], hits: list[Hit]) -> None:  # fmt: skip
        top, bottom = body
        panel = self._r(40, top, 760, bottom - top + 90)
        pygame.draw.rect(surface, TONES["info"][0], panel, border_radius=round(16 * self._u))
        self._title(surface, model, self._r(80, top + 60, 680, bottom - top - 40), size=40)
        self._media(surface, model.media[0], self._r(830, top, 410, 308), images)

    def _capture(self, surface: pygame.Surface, model: ScreenModel, images: MediaImages,
                 now: float, body: tuple[int, int], hits: list[Hit]) -> None:  # fmt: skip
        top, bottom = body
        height = bottom - top + 90
        if model.media:
            self._media(surface, model.media[0], self._r(40, top, 700, height), images)
        end = self._title(surface, model, self._r(770, top, 470, 330), size=30)
        design_end = (end - self._origin[1]) / self._u
        if model.notice is not None:
            bottom = self._banner(surface, model.notice, self._r(770, design_end + 20, 470, 130))
            design_end = (bottom - self._origin[1]) / self._u
        if model.big is not None:
            ring = self._r(915, design_end + 20, 180, 180)
            pygame.draw.ellipse(surface, PRIMARY, ring)
            self._text(surface, model.big, ring.move(0, round(36 * self._u)), size=84,
                       bold=True, colour=WHITE, align="center", max_lines=1)  # fmt: skip
        elif model.busy:
            self._spinner(surface, (1005, design_end + 80), now)


_LAYOUTS: dict[Screen, Callable[..., None]] = {
    Screen.TICKET: Renderer._ticket,
    Screen.LANGUAGE: Renderer._choices,
    Screen.METHOD: Renderer._choices,
    Screen.CONSENT: Renderer._choices,
    Screen.BOOKING: Renderer._booking,
    Screen.WALK_IN: Renderer._walk_in,
    Screen.WAITING: Renderer._waiting,
    Screen.TALKING: Renderer._talking,
    Screen.ON_HOLD: Renderer._on_hold,
    Screen.CAPTURE: Renderer._capture,
}


def _grouped(digits: str) -> str:
    """1234 5678 9012 3456: a long number is read back in fours."""
    return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))
