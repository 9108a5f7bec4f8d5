"""One camera and microphone shared by the call, the supervisors' monitor links and the
kiosk's self-view: aiortc's MediaRelay, with two differences.

- **A new viewer starts with the current picture.** MediaRelay hands a new consumer the
  source's *next* frame. While the booth is held its camera runs at 7.5 fps, so the call's
  encoder waited 0-133 ms (67 on average) after the connection came up before it had a
  frame to send: time the officer spent looking at an empty tile. Here a new video
  consumer gets the latest frame at once when it is fresh (younger than `FRESH_S`), then
  every new one.
- **A slow consumer cannot grow memory without bound.** MediaRelay queues every frame for
  every consumer until it is read; here a consumer keeps at most `backlog` frames and the
  oldest go first (a video encoder that fell behind wants the newest picture anyway).

Like MediaRelay, a source is read from the first consumer's first `recv()` on, for as long
as the source lives (a live camera must be read all the time, or it backs up).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

import structlog
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.frame import Frame
from av.packet import Packet

log = structlog.get_logger("loket.booth.relay")

Media = Frame | Packet
FRESH_S = 0.3  # a frame this young still shows what the camera sees
BACKLOG = {"video": 4, "audio": 50}  # frames a consumer may fall behind (audio: 1 s)


@dataclass
class _Source:
    track: MediaStreamTrack
    consumers: set[RelayedTrack] = field(default_factory=set)
    reader: asyncio.Task[None] | None = None
    latest: Media | None = None
    latest_at: float = 0.0


class RelayedTrack(MediaStreamTrack):
    """One consumer's view of a relayed source."""

    def __init__(self, relay: FrameRelay, source: _Source, buffered: bool) -> None:
        super().__init__()
        self.kind = source.track.kind
        self._relay: FrameRelay | None = relay
        self._source = source
        self._frames: deque[Media | None] = deque(
            maxlen=BACKLOG.get(self.kind, 4) if buffered else 1
        )
        self._arrived = asyncio.Event()
        self._started = False

    def _push(self, frame: Media | None) -> None:
        self._frames.append(frame)
        self._arrived.set()

    async def recv(self) -> Media:
        if self.readyState != "live" or self._relay is None:
            raise MediaStreamError
        if not self._started:
            self._started = True
            self._relay._start(self)
        while not self._frames:
            self._arrived.clear()
            await self._arrived.wait()
        frame = self._frames.popleft()
        if frame is None:  # the source ended
            self.stop()
            raise MediaStreamError
        return frame

    def stop(self) -> None:
        super().stop()
        if self._relay is not None:
            self._relay._stop(self)
            self._relay = None


class FrameRelay:
    """Relays source tracks to any number of consumers (see the module's docstring)."""

    def __init__(self, fresh_s: float = FRESH_S) -> None:
        self._sources: dict[MediaStreamTrack, _Source] = {}
        self._fresh_s = fresh_s

    def subscribe(self, track: MediaStreamTrack, buffered: bool = True) -> RelayedTrack:
        """A new consumer of `track`. `buffered=False`: only the newest frame is kept (a
        screen's self-view)."""
        source = self._sources.get(track)
        if source is None:
            source = self._sources[track] = _Source(track)
        return RelayedTrack(self, source, buffered)

    def _start(self, consumer: RelayedTrack) -> None:
        source = consumer._source
        source.consumers.add(consumer)
        fresh = time.monotonic() - source.latest_at < self._fresh_s
        if consumer.kind == "video" and source.latest is not None and fresh:
            consumer._push(source.latest)
        if source.reader is None:
            source.reader = asyncio.get_running_loop().create_task(
                self._read(source), name=f"relay-{source.track.kind}"
            )

    def _stop(self, consumer: RelayedTrack) -> None:
        consumer._source.consumers.discard(consumer)

    async def _read(self, source: _Source) -> None:
        while True:
            try:
                frame: Media | None = await source.track.recv()
            except MediaStreamError:
                frame = None
            except Exception as exc:  # a broken source ends; its consumers must not wait on
                log.error("relay_source_failed", kind=source.track.kind, error=repr(exc))
                frame = None
            if frame is not None:
                source.latest, source.latest_at = frame, time.monotonic()
            for consumer in list(source.consumers):
                consumer._push(frame)
            if frame is None:
                self._sources.pop(source.track, None)
                return
