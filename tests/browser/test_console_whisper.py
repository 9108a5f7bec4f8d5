"""Whisper end to end in two real Chromium pages: the supervisor's dashboard speaks, the
officer's console (web_cso/links.js) hears it and says who is speaking; the console's tile
shows the session is monitored; stopping clears both. A real aiortc kiosk is in the call.
"""

from __future__ import annotations

import pytest

from tests.support.accounts import add_user
from tests.support.booths import running_booths
from tests.support.browser import chromium, collect_errors, log_in, tone_wav
from tests.support.dashboard import artifacts_dir, open_dashboard
from tests.support.live_server import running_server, server_settings
from tests.support.talking_cso import wait_until

pytestmark = pytest.mark.browser

# Peak level of the whisper <audio>'s stream, measured in the console page with WebAudio.
WHISPER_LEVEL = """() => {
  const audio = document.querySelector('audio.whisper-audio');
  if (!audio || !audio.srcObject) return null;
  if (!window.__whisperMeter) {
    const ctx = new AudioContext();
    const analyser = ctx.createAnalyser();
    ctx.createMediaStreamSource(audio.srcObject).connect(analyser);
    const buf = new Float32Array(analyser.fftSize);
    window.__whisperMeter = { peak: 0 };
    setInterval(() => {
      analyser.getFloatTimeDomainData(buf);
      const m = window.__whisperMeter;
      for (const v of buf) m.peak = Math.max(m.peak, Math.abs(v));
    }, 50);
  }
  return window.__whisperMeter.peak;
}"""


async def test_the_console_hears_a_whisper_and_says_who_speaks(tmp_path) -> None:
    tone = tone_wav(tmp_path / "mic.wav", hz=700.0)
    settings = server_settings(tmp_path, broadcast_interval=0.1)
    async with running_server(settings) as server:
        await add_user(server, "siti", capacity=1)
        await add_user(server, "budi", role="supervisor")
        async with running_booths(server, 1) as [booth], chromium(fake_audio=tone) as browser:
            console = await browser.new_page(viewport={"width": 1366, "height": 768})
            console_errors = collect_errors(console)
            await log_in(console, server.base_url, "siti")
            await wait_until(lambda: booth.peer_state == "connected", 60)
            session = str(booth.session_id)

            dash = await browser.new_page(viewport={"width": 1400, "height": 1000})
            dash_errors = collect_errors(dash)
            await open_dashboard(dash, server.base_url, "budi")
            await dash.click(f".session[data-session='{session}'] .monitor")
            await dash.wait_for_selector("#monitor:not([hidden])")
            tile = f".tile[data-session='{session}']"
            await console.wait_for_selector(f"{tile}[data-monitored='true'] .monitored-badge")

            await dash.click("#whisper-toggle")
            await dash.wait_for_selector("#monitor[data-whisper=on]")
            badge = console.locator("#whisper-badge")
            await badge.wait_for(state="visible", timeout=30_000)
            assert (await badge.text_content() or "").startswith("Supervisor ")
            assert "is speaking to you" in (await badge.text_content() or "")
            await console.wait_for_function(
                f"() => {{ const p = ({WHISPER_LEVEL})(); return p !== null && p > 0.01; }}",
                timeout=30_000,
            )
            await console.screenshot(path=str(artifacts_dir() / "console-whisper.png"))
            # The kiosk never took part: only the monitor link reached it.
            assert booth.monitors.opened == 1

            await dash.click("#whisper-toggle")
            await dash.wait_for_selector("#monitor[data-whisper=off]")
            await badge.wait_for(state="hidden", timeout=15_000)
            assert await console.locator("audio.whisper-audio").count() == 0

            # The console reports its connection quality; the dashboard shows it.
            quality = f".session[data-session='{session}'] .quality"
            await dash.wait_for_function(
                f'() => (document.querySelector("{quality}") || {{}}).textContent'
                ' && document.querySelector("' + quality + "\").dataset.band !== ''",
                timeout=20_000,
            )
            reported = server.app.state.floor.core.sessions[session].quality
            assert "cso" in reported and reported["cso"].fps is not None

            await dash.click("#monitor-stop")
            await console.wait_for_selector(f"{tile}:not([data-monitored='true'])")
            assert console_errors == [] and dash_errors == []
