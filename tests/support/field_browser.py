"""The field run with the real console: the officer is web_cso in headless Chromium.

The page is the console as an officer uses it (log in, auto-accept, key 1 to talk to the
booth); a script added before the page loads only watches: it keeps the console's peer
connections and socket, polls getStats every ~20 ms for what arrived (voice packets, face
and document frames decoded) and notes each capture status with its time, and it can send
a `request_capture` on the console's socket as the claim panel's button does. Host
candidates go unhidden (no mDNS names): across the branch's line a console is reached by
its real addresses, never by a multicast name.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, async_playwright

from signaling.messages import CaptureStatus
from tests.support.branch_link import LinkProfile
from tests.support.browser import CHROMIUM_ARGS, chromium_path, log_in, tone_wav
from tests.support.field import CSO_NAME, FieldReport, Timeline, branch_office, measure

WATCH = """
(() => {
  const field = { pcs: [], voice: [], face: [], document: [], statuses: [], connectedAt: null,
                  sampling: false, v: null, ws: null, voiceBytes: [], officerBytes: [],
                  voiceFmtp: null };
  window.__field = field;
  const NativePC = window.RTCPeerConnection;
  function WatchedPC(...args) {
    const pc = new NativePC(...args);
    field.pcs.push(pc);
    pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState === "connected" && field.connectedAt === null) {
        field.connectedAt = performance.now();
      }
    });
    return pc;
  }
  WatchedPC.prototype = NativePC.prototype;
  Object.setPrototypeOf(WatchedPC, NativePC);
  window.RTCPeerConnection = WatchedPC;
  const NativeWS = window.WebSocket;
  function WatchedWS(...args) {
    const ws = new NativeWS(...args);
    if (String(args[0]).includes("/ws/cso")) {
      field.ws = ws;
      ws.addEventListener("message", (ev) => {
        try {
          const m = JSON.parse(ev.data);
          if (m.type === "capture_status") field.statuses.push([performance.now(), m]);
        } catch (e) { /* not ours to judge */ }
      });
      const send = ws.send.bind(ws);
      ws.send = (data) => {
        if (field.v === null) { try { field.v = JSON.parse(data).v; } catch (e) {} }
        return send(data);
      };
    }
    return ws;
  }
  WatchedWS.prototype = NativeWS.prototype;
  Object.setPrototypeOf(WatchedWS, NativeWS);
  window.WebSocket = WatchedWS;

  field.start = () => {
    if (field.sampling) return;
    field.sampling = true;
    const seen = {};
    const tick = async () => {
      const pc = field.pcs.filter((p) => p.connectionState === "connected").at(-1);
      if (pc) {
        const trs = pc.getTransceivers();
        const doc = trs[2] && trs[2].receiver.track ? trs[2].receiver.track.id : null;
        const report = await pc.getStats();
        const t = performance.now();
        report.forEach((s) => {
          if (s.type === "outbound-rtp" && s.kind === "audio") {
            field.officerBytes.push([t, s.bytesSent || 0]);
          }
          if (s.type !== "inbound-rtp") return;
          if (s.kind === "audio") {
            const n = s.packetsReceived || 0;
            if (n > (seen.audio ?? 0)) field.voiceBytes.push([t, s.bytesReceived, n]);
            const codec = report.get(s.codecId);
            if (codec) field.voiceFmtp = codec.sdpFmtpLine || "";
            for (let i = seen.audio ?? n; i < n; i++) field.voice.push(t);
            seen.audio = n;
            field.concealed = s.concealedSamples;
            field.samples = s.totalSamplesReceived;
          } else {
            const which = s.trackIdentifier === doc ? "document" : "face";
            const n = s.framesDecoded || 0;
            for (let i = seen[which] ?? 0; i < n; i++) {
              field[which].push(which === "face" ? [t, s.frameWidth || 0, s.frameHeight || 0] : t);
            }
            seen[which] = n;
          }
        });
      }
      if (field.sampling) setTimeout(tick, 20);
    };
    tick();
  };

  field.capture = (sessionId, kind) => {
    const captureId = "cap-" + Math.random().toString(16).slice(2, 12);
    const id = crypto.randomUUID().replaceAll("-", "");
    field.ws.send(JSON.stringify({ v: field.v, id, ts: Date.now() / 1000, reply_to: null,
      type: "request_capture", session_id: sessionId, capture_id: captureId, kind }));
    return captureId;
  };
})();
"""

CHROMIUM_FIELD_ARGS = [*CHROMIUM_ARGS, "--disable-features=WebRtcHideLocalIpsWithMdns"]


@contextlib.asynccontextmanager
async def field_chromium(fake_audio: Path) -> AsyncIterator[Browser]:
    args = [*CHROMIUM_FIELD_ARGS, f"--use-file-for-fake-audio-capture={fake_audio}"]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium_path()), args=args)
        try:
            yield browser
        finally:
            await browser.close()


class ConsoleOfficer:
    """The console in a Chromium page as an Officer (tests/support/field.py)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.offset = 0.0  # monotonic seconds = page ms / 1000 + offset

    async def clock(self) -> None:
        """Tie the page's clock to this process's monotonic one (to a few ms)."""
        before = time.monotonic()
        page_ms = await self.page.evaluate("performance.now()")
        after = time.monotonic()
        self.offset = (before + after) / 2 - page_ms / 1000

    async def call_started(self, within: float) -> Timeline:
        await self.page.wait_for_function(
            "() => window.loketConsole.tiles().some(t => t.state === 'connected')",
            timeout=within * 1000,
        )
        await self.page.keyboard.press("1")  # talk to it: focus
        await self.page.evaluate("window.__field.start()")
        await self.clock()
        await self.page.wait_for_function("() => window.__field.face.length > 0", timeout=20_000)
        return await self.timeline()

    async def request_capture(self, session_id: str, kind: str) -> str:
        return str(
            await self.page.evaluate("([s, k]) => window.__field.capture(s, k)", [session_id, kind])
        )

    async def timeline(self) -> Timeline:
        raw: dict[str, Any] = await self.page.evaluate(
            """() => { const f = window.__field; return { voice: f.voice, face: f.face,
                 document: f.document, statuses: f.statuses, connectedAt: f.connectedAt,
                 voiceBytes: f.voiceBytes, officerBytes: f.officerBytes,
                 session: (window.loketConsole.tiles()[0] || {}).session || "" }; }"""
        )
        at = lambda ms: ms / 1000 + self.offset  # noqa: E731
        return Timeline(
            voice=[at(t) for t in raw["voice"]],
            face=[(at(t), int(w), int(h)) for t, w, h in raw["face"]],
            document=[at(t) for t in raw["document"]],
            connected_at=None if raw["connectedAt"] is None else at(raw["connectedAt"]),
            statuses=[(at(t), CaptureStatus.model_validate(m)) for t, m in raw["statuses"]],
            session_id=raw["session"],
            voice_payloads=_payloads(raw["voiceBytes"], at),
            officer_voice_bytes=[(at(t), int(n)) for t, n in raw["officerBytes"]],
        )


def _payloads(
    samples: list[list[float]], at: Callable[[float], float]
) -> list[tuple[float, int, bool]]:
    """Cumulative (bytes, packets) samples as per-interval payloads (mono: Chromium
    reports no channel count per packet; the codec's parameters say it)."""
    out = []
    for (_, b0, _), (t1, b1, _) in itertools.pairwise(samples):
        out.append((at(t1), int(b1 - b0), False))
    return out


async def console_field_run(
    profile: LinkProfile,
    workdir: Path,
    *,
    face: tuple[int, int] = (640, 360),
    settle_s: float = 10.0,
    kind: str = "kk",
    after_s: float = 0.0,
) -> FieldReport:
    """field_run (tests/support/field.py) with the officer at the real console."""
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    tone = tone_wav(workdir / "officer.wav")
    async with (
        branch_office(profile, workdir, face, bind_all=True) as branch,
        field_chromium(tone) as browser,
    ):
        page = await browser.new_page(viewport={"width": 1366, "height": 768})
        await page.add_init_script(WATCH)
        local = branch.server.base_url.replace(branch.link.outside_ip, "127.0.0.1")
        await log_in(page, local, CSO_NAME)
        await branch.booth.start()
        officer = ConsoleOfficer(page)
        report = await measure(branch, officer, settle_s, kind, after_s)
        report.marks["concealed"] = await page.evaluate(
            "() => [window.__field.concealed, window.__field.samples]"
        )
        report.marks["voice_fmtp"] = await page.evaluate("() => window.__field.voiceFmtp")
        return report
