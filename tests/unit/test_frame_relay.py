"""booth_client.relay.FrameRelay: a new viewer starts with the current picture; a slow one
cannot grow memory; the source's end reaches everyone."""

from __future__ import annotations

import asyncio

import av
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from booth_client.relay import BACKLOG, FrameRelay


class Source(MediaStreamTrack):
    """A track whose frames the test hands over one by one (None ends it)."""

    def __init__(self, kind: str = "video") -> None:
        super().__init__()
        self.kind = kind
        self.frames: asyncio.Queue[av.VideoFrame | av.AudioFrame | Exception | None] = (
            asyncio.Queue()
        )
        self.count = 0

    def give(self) -> av.VideoFrame | av.AudioFrame:
        if self.kind == "video":
            frame: av.VideoFrame | av.AudioFrame = av.VideoFrame(16, 16, "yuv420p")
        else:
            frame = av.AudioFrame(format="s16", layout="mono", samples=160)
        frame.pts = self.count
        self.count += 1
        self.frames.put_nowait(frame)
        return frame

    def end(self) -> None:
        self.frames.put_nowait(None)

    async def recv(self) -> av.VideoFrame | av.AudioFrame:
        frame = await self.frames.get()
        if frame is None:
            raise MediaStreamError
        if isinstance(frame, Exception):
            raise frame
        return frame


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def pending(track: MediaStreamTrack) -> bool:
    """Whether recv() has nothing to give yet."""
    task = asyncio.ensure_future(track.recv())
    await settle()
    if task.done():
        return False
    task.cancel()
    return True


async def test_a_new_video_consumer_starts_with_the_latest_frame() -> None:
    source, relay = Source(), FrameRelay()
    call = relay.subscribe(source)
    first = source.give()
    assert await call.recv() is first
    latest = source.give()
    assert await call.recv() is latest
    # A second viewer (a new call, a monitor link) gets that picture at once, not the next.
    monitor = relay.subscribe(source)
    assert await asyncio.wait_for(monitor.recv(), 1) is latest
    nxt = source.give()
    assert await monitor.recv() is nxt
    assert await call.recv() is nxt


async def test_a_stale_latest_frame_is_not_shown() -> None:
    source, relay = Source(), FrameRelay(fresh_s=0.05)
    call = relay.subscribe(source)
    source.give()
    await call.recv()
    await asyncio.sleep(0.1)
    late = relay.subscribe(source)
    assert await pending(late)
    nxt = source.give()
    assert await late.recv() is nxt


async def test_audio_consumers_start_with_the_next_frame() -> None:
    source, relay = Source("audio"), FrameRelay()
    first = relay.subscribe(source)
    source.give()
    await first.recv()
    second = relay.subscribe(source)
    assert await pending(second)
    nxt = source.give()
    assert await second.recv() is nxt


async def test_a_slow_consumer_keeps_only_its_backlog_newest_first_out_last() -> None:
    source, relay = Source(), FrameRelay()
    slow = relay.subscribe(source)
    source.give()
    await slow.recv()  # started
    given = [source.give() for _ in range(BACKLOG["video"] + 6)]
    await settle()
    got = [await slow.recv() for _ in range(BACKLOG["video"])]
    assert got == given[-BACKLOG["video"] :]
    assert await pending(slow)


async def test_an_unbuffered_consumer_gets_only_the_newest() -> None:
    source, relay = Source(), FrameRelay()
    view = relay.subscribe(source, buffered=False)
    source.give()
    await view.recv()
    frames = [source.give() for _ in range(3)]
    await settle()
    assert await view.recv() is frames[-1]


async def two_watching(source: Source, relay: FrameRelay) -> list[MediaStreamTrack]:
    """Two consumers of `source`, both past their first frame."""
    consumers = [relay.subscribe(source), relay.subscribe(source)]
    source.give()
    for consumer in consumers:
        await consumer.recv()
    return consumers


async def test_the_source_ending_ends_every_consumer() -> None:
    source, relay = Source(), FrameRelay()
    a, b = await two_watching(source, relay)
    source.end()
    for track in (a, b):
        with pytest.raises(MediaStreamError):
            await track.recv()
        assert track.readyState == "ended"


async def test_a_stopped_consumer_is_forgotten() -> None:
    source, relay = Source(), FrameRelay()
    a, b = await two_watching(source, relay)
    b.stop()
    with pytest.raises(MediaStreamError):
        await b.recv()
    source.give()
    await a.recv()
    assert len(relay._sources[source].consumers) == 1


async def test_a_source_that_breaks_ends_its_consumers_instead_of_freezing_them() -> None:
    source, relay = Source(), FrameRelay()
    a, b = await two_watching(source, relay)
    source.frames.put_nowait(OSError("camera unplugged"))
    for track in (a, b):
        with pytest.raises(MediaStreamError):
            await asyncio.wait_for(track.recv(), 1)
