"""A CSO's shift in real headless Chromium against six real `loket booth` processes.

One floor for the module: a live server, six kiosk processes with synthetic media (booth-6's
participant speaks in bursts, the others are silent) whose speakers are measuring sinks,
and the console with a fake camera and a fake microphone that plays a steady tone. The
tests run in order on it, each leaving it as it found it (the takeover test comes last).

What is measured at the booths is what they really received: each booth process writes the
level of every frame of the officer's audio it decoded, with its arrival time on the
system-wide monotonic clock, which this process shares.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, Request

from tests.support.accounts import add_user, login
from tests.support.booths import BoothProcess, booth_processes
from tests.support.browser import chromium, collect_errors, log_in, tone_wav
from tests.support.claim_panel import (
    accept_every_document,
    capture_every_document,
    open_first_claim,
)
from tests.support.live_server import LiveServer, running_server, server_settings

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

ARTIFACTS = Path(os.environ.get("LOKET_TEST_ARTIFACTS", "test-artifacts")) / "console"
SPEAKER = 6  # booth-6's participant speaks: 1.2 s of voice every 3.7 s
# RMS above which a booth hears the officer. The fake microphone's tone leaves Chromium at
# about 0.022 (its noise suppression and gain control tame a steady tone); silence is 0.
HEARD = 0.005
FRAME_S = 0.020  # one Opus frame of the officer's audio
FOCUS_GOAL_S = 0.200  # the goal, key press -> audio at the booth
# Asserted with room for a loaded two-core machine (six kiosks, Chromium and the server
# share it); the p95 actually measured is printed and recorded in the artifacts.
FOCUS_LIMIT_S = 1.0

TILES = "() => window.loketConsole.tiles()"


@dataclass
class Floor:
    server: LiveServer
    booths: list[BoothProcess]
    browser: Browser
    page: Page
    errors: list[str]
    workdir: Path


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def floor(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Floor]:
    workdir = tmp_path_factory.mktemp("floor")
    tone = tone_wav(workdir / "officer.wav")
    async with running_server(server_settings(workdir)) as server:
        await add_user(server, "siti", capacity=6)
        async with (
            booth_processes(server, 6, workdir / "booths", speak={SPEAKER: "1.2/2.5"}) as booths,
            chromium(fake_audio=tone) as browser,
        ):
            page = await browser.new_page(viewport={"width": 1366, "height": 768})
            errors = collect_errors(page)
            await log_in(page, server.base_url, "siti")
            await page.wait_for_function(
                f"() => ({TILES})().filter(t => t.state === 'connected').length === 6",
                timeout=120_000,
            )
            yield Floor(server, booths, browser, page, errors, workdir)


async def tiles(page: Page) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await page.evaluate(TILES)
    return found


async def key_of(page: Page, label: str) -> str:
    """The number key of the booth's tile (its place on the screen)."""
    for index, tile in enumerate(await tiles(page)):
        if tile["label"] == label:
            return str(index + 1)
    raise AssertionError(f"no tile for {label}")


async def until(condition, within: float = 20.0, step: float = 0.05):  # type: ignore[no-untyped-def]
    async with asyncio.timeout(within):
        while not (result := condition()):
            await asyncio.sleep(step)
        return result


def save_artifact(name: str, data: dict[str, object]) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / name).write_text(json.dumps(data, indent=2) + "\n")


async def test_all_six_tiles_play(floor: Floor) -> None:
    page = floor.page
    first = await page.evaluate("() => window.loketConsole.framesDecoded()")
    await asyncio.sleep(2.0)
    then = await page.evaluate("() => window.loketConsole.framesDecoded()")
    assert len(first) == 6 and set(first) == set(then)
    # Every booth's video is being decoded now, per getStats: frames advance on all six.
    assert all(then[s] > first[s] for s in first), (first, then)
    assert sorted(t["label"] for t in await tiles(page)) == [f"booth-{n}" for n in range(1, 7)]
    status = await page.text_content("#status") or ""
    assert status.startswith("Connected · serving 6 booths"), status
    assert await page.evaluate("() => window.loketConsole.media()") == {
        "audio": True, "video": True, "error": None
    }  # fmt: skip
    assert floor.errors == []


async def test_both_ends_report_call_quality_for_supervisors(floor: Floor) -> None:
    """Console and kiosks send `peer_stats`; the focused booth counts the officer's video."""
    page, booths = floor.page, floor.booths
    target = booths[0]
    await page.keyboard.press(await key_of(page, target.label))
    core = floor.server.app.state.floor.core
    focused = next(t["session"] for t in await tiles(page) if t["label"] == target.label)

    def reported() -> bool:
        sessions = list(core.sessions.values())
        both = len(sessions) == 6 and all({"booth", "cso"} <= set(s.quality) for s in sessions)
        booth_end = core.sessions[focused].quality.get("booth")
        return both and booth_end is not None and (booth_end.fps or 0) > 5

    await until(reported, within=40, step=0.5)
    for record in core.sessions.values():
        assert record.quality["cso"].rtt_ms is not None
        assert record.quality["booth"].loss is not None and record.quality["booth"].loss < 0.1


async def test_only_the_focused_booth_hears_the_officer_within_the_goal(floor: Floor) -> None:
    page, booths = floor.page, floor.booths
    await page.keyboard.press("Escape")  # everyone on hold
    await settled(booths)
    quiet_from = time.monotonic()
    await asyncio.sleep(1.0)
    assert all(b.levels(quiet_from) == [] for b in booths), "a booth on hold heard the CSO"

    latencies: list[float] = []
    focus_time = dict.fromkeys((b.label for b in booths), 0.0)
    periods: list[tuple[str, float]] = []  # (booth focused, key pressed at)
    order = [1, 3, 5, 2, 4, 6, 1, 2, 3, 4, 5, 6]
    for number in order:
        target = booths[number - 1]
        key = await key_of(page, target.label)
        pressed = time.monotonic()
        await page.keyboard.press(key)
        heard_at = await until(lambda t=target, p=pressed: t.heard(p, HEARD), within=10)
        latencies.append(heard_at - pressed)
        await asyncio.sleep(0.3)
        sent_before = await page.evaluate("() => window.loketConsole.audioPacketsSent()")
        await asyncio.sleep(1.0)
        sent_after = await page.evaluate("() => window.loketConsole.audioPacketsSent()")
        labels = {t["session"]: t["label"] for t in await tiles(page)}
        # The browser sends microphone packets on the focused booth's connection only.
        growing = sorted(labels[s] for s in sent_after if sent_after[s] > sent_before.get(s, 0))
        assert growing == [target.label], (target.label, sent_before, sent_after)
        state = {t["label"]: (t["focused"], t["sending"]) for t in await tiles(page)}
        assert state[target.label] == (True, True)
        assert sum(sending for _, sending in state.values()) == 1, state
        periods.append((target.label, pressed))
    await page.keyboard.press("Escape")
    since = time.monotonic()
    periods.append(("", since))
    for (label, began), (_, ended) in itertools.pairwise(periods):
        focus_time[label] += ended - began
    drained = await settled(booths)
    # At the booths: each heard the officer for no longer than it was focused (a booth on
    # hold hears nothing; on a loaded machine a kiosk may decode its share late, so this
    # counts frames rather than timing them), and after Esc nobody hears anything.
    for booth in booths:
        heard_s = FRAME_S * sum(1 for _, rms in booth.levels(quiet_from) if rms > HEARD)
        allowed = focus_time[booth.label] + 0.1 * order.count(int(booth.label[-1]))
        assert 0 < heard_s <= allowed, (booth.label, heard_s, focus_time)
    quiet = time.monotonic()
    await asyncio.sleep(1.5)
    assert all(b.levels(quiet) == [] for b in booths)

    p50 = statistics.median(latencies)
    p95 = sorted(latencies)[max(0, round(0.95 * len(latencies)) - 1)]
    routed = [e["routed_ms"] for e in await page.evaluate("() => window.loketConsole.focusLog()")]
    report = {
        "switches": len(latencies),
        "key_to_booth_audio_ms": {"p50": round(p50 * 1000, 1), "p95": round(p95 * 1000, 1)},
        "goal_ms": FOCUS_GOAL_S * 1000,
        "replace_track_ms_max": round(max(r for r in routed if r is not None), 1),
        "booth_backlog_after_hold_all_ms": round((drained - since) * 1000, 1),
    }
    save_artifact("focus_latency.json", report)
    print(f"focus switch: {report}")
    assert p95 <= FOCUS_LIMIT_S, report
    assert floor.errors == []


async def settled(booths: list[BoothProcess], quiet_s: float = 1.0, within: float = 30.0) -> float:
    """Wait until no booth has heard anything for `quiet_s` (a starved kiosk catching up
    on audio sent before a switch); returns when the last frame arrived."""
    async with asyncio.timeout(within):
        while True:
            last = max((at for b in booths for at, _ in b.levels(time.monotonic() - 60)), default=0)
            if time.monotonic() - last >= quiet_s:
                return last
            await asyncio.sleep(0.2)


async def test_a_waiting_participant_who_speaks_is_flagged(floor: Floor) -> None:
    page = floor.page
    speaker = f"booth-{SPEAKER}"
    # Talking to booth-1: booth-6's participant speaks in bursts while waiting.
    await page.keyboard.press(await key_of(page, "booth-1"))
    await page.wait_for_function(
        f"() => ({TILES})().some(t => t.label === '{speaker}' && t.wants)", timeout=15_000
    )
    flagged = [t["label"] for t in await tiles(page) if t["wants"]]
    assert flagged == [speaker]
    tile = page.locator(f".tile:has(.booth:text-is('{speaker}'))")
    assert await tile.locator(".flag").is_visible()
    # The silent ones show a live meter at rest, not a flag, for a while.
    for _ in range(20):
        assert [t["label"] for t in await tiles(page) if t["wants"]] in ([speaker], [])
        await asyncio.sleep(0.1)
    # One key switches to whoever wants to talk; the flag goes once they are focused.
    await page.wait_for_function(f"() => ({TILES})().some(t => t.wants)", timeout=15_000)
    await page.keyboard.press("w")
    await page.wait_for_function(
        f"() => ({TILES})().find(t => t.label === '{speaker}').focused", timeout=5_000
    )
    assert not any(t["wants"] for t in await tiles(page) if t["label"] == speaker)
    await page.keyboard.press("Escape")
    assert floor.errors == []


async def upload_as(
    booth: BoothProcess, base_url: str, claim_id: str, kind: str, seed: int
) -> None:
    """The booth sends a picture in its session (as its capture or demo participant does)."""
    from tests.support.images import jpeg

    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        login = await http.post("/api/auth/booth", json={"credential": booth.credential})
        login.raise_for_status()
        res = await http.post(
            f"/api/claims/{claim_id}/documents",
            params={"kind": kind},
            content=jpeg(seed),
            headers={
                "Authorization": f"Bearer {login.json()['access_token']}",
                "Idempotency-Key": str(uuid.uuid4()),
                "Content-Type": "image/jpeg",
            },
        )
        assert res.status_code == 201, res.text


async def test_pictures_arrive_live_and_are_fetched_once(floor: Floor) -> None:
    page, booth = floor.page, floor.booths[1]
    await page.keyboard.press(await key_of(page, booth.label))
    claim_id = next(t["claimId"] for t in await tiles(page) if t["label"] == booth.label)
    fetched: list[str] = []

    def on_request(request: Request) -> None:
        if "/api/documents/" in request.url and request.method == "GET":
            fetched.append(request.url)

    page.on("request", on_request)
    await page.keyboard.press("c")  # the focused booth's claim
    await page.wait_for_selector(".claim-panel .checklist li")
    names = await page.eval_on_selector_all(".checklist .name", "ns => ns.map(n => n.textContent)")
    # English UI, the documents under the names participants know them by.
    assert "KTP (identity card) / KITAS (limited-stay permit)" in names
    assert "Buku tabungan (savings book)" in names
    for seed, kind in enumerate(("ktp", "kk", "kpj_card")):
        await upload_as(booth, floor.server.base_url, str(claim_id), kind, seed)
        # Pushed (document_added): the picture shows without a reload or a poll.
        await page.wait_for_selector(f".claim-panel .document >> nth={seed}", timeout=15_000)
    await page.wait_for_function(
        "() => [...document.querySelectorAll('.claim-panel .doc-thumb')]"
        ".every(i => i.naturalWidth > 0)"
    )
    assert len(fetched) == 3 and len(set(fetched)) == 3, fetched  # each picture once
    # The viewer: zoom and rotate, by key, then Esc closes it.
    await page.click(".claim-panel .doc-open >> nth=0")
    await page.wait_for_selector("#viewer[open]")
    await page.keyboard.press("+")
    await page.keyboard.press("r")
    transform = await page.eval_on_selector("#viewer-img", "i => i.style.transform")
    assert transform == "scale(1.25) rotate(90deg)"
    await page.keyboard.press("Escape")
    await page.wait_for_function("() => !document.querySelector('#viewer').open")
    assert floor.errors == []


async def test_screenshots_at_both_sizes(floor: Floor) -> None:
    page = floor.page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.keyboard.press(await key_of(page, "booth-2"))
    shots = [(1366, 768, "-claim"), (1920, 1080, "-claim"), (1366, 768, ""), (1920, 1080, "")]
    for width, height, suffix in shots:
        if not suffix and await page.is_visible("#claim"):
            await page.click(".claim-panel .close-claim")
        await page.set_viewport_size({"width": width, "height": height})
        await asyncio.sleep(1.5)
        # Six tiles, all on screen: nothing scrolls, every tile's video is inside the view.
        fits = await page.evaluate(
            """() => {
                const d = document.documentElement;
                const boxes = [...document.querySelectorAll('#tiles .tile')].map(
                    t => t.getBoundingClientRect());
                return d.scrollHeight <= innerHeight && d.scrollWidth <= innerWidth
                    && boxes.length === 6
                    && boxes.every(b => b.bottom <= innerHeight && b.right <= innerWidth
                                        && b.height > 100);
            }"""
        )
        assert fits, f"the console does not fit {width}x{height}"
        await page.screenshot(path=str(ARTIFACTS / f"console-{width}{suffix}.png"))
    await page.set_viewport_size({"width": 1366, "height": 768})
    await page.keyboard.press("Escape")
    assert floor.errors == []


async def test_a_killed_booth_shows_reconnecting_then_video_again(floor: Floor) -> None:
    page, victim = floor.page, floor.booths[2]
    await victim.kill()
    await page.wait_for_function(
        f"() => ({TILES})().some(t => t.label === '{victim.label}' && t.away)", timeout=20_000
    )
    tile = page.locator(f".tile:has(.booth:text-is('{victim.label}'))")
    assert (await tile.locator(".state").text_content()) == "reconnecting"
    assert "1 reconnecting" in (await page.text_content("#status") or "")
    await victim.start()  # the kiosk comes back (a new visit: it starts without a token)
    await page.wait_for_function(
        f"""() => ({TILES})().some(t => t.label === '{victim.label}' && !t.away
                                      && t.state === 'connected')""",
        timeout=60_000,
    )
    frames = await page.evaluate("() => window.loketConsole.framesDecoded()")
    await asyncio.sleep(1.5)
    later = await page.evaluate("() => window.loketConsole.framesDecoded()")
    assert len(later) == 6 and all(later[s] > frames.get(s, 0) for s in later)
    assert floor.errors == []


async def test_a_second_tab_takes_over_without_ping_pong(floor: Floor) -> None:
    first = floor.page
    sockets: list[object] = []
    first.on("websocket", lambda ws: sockets.append(ws))
    second = await floor.browser.new_page(viewport={"width": 1366, "height": 768})
    second_errors = collect_errors(second)
    await log_in(second, floor.server.base_url, "siti")
    await first.wait_for_function(
        "() => document.querySelector('#status').textContent.includes('Another tab')"
    )
    assert await first.locator("#tiles .tile").count() == 0
    # The new tab has the six sessions back from welcome and plays them.
    try:
        await second.wait_for_function(
            f"() => ({TILES})().filter(t => t.state === 'connected').length === 6",
            timeout=60_000,
        )
    except Exception as exc:
        seen = await tiles(second)
        core = floor.server.app.state.floor.core
        carried = {
            sid: (r.descriptions, sorted(r.extra_fingerprints)) for sid, r in core.sessions.items()
        }
        raise AssertionError(f"the second tab's tiles: {seen}; sessions: {carried}") from exc
    await asyncio.sleep(3.0)
    assert sockets == []  # the first tab did not reconnect (no ping-pong)
    assert "Another tab" in (await first.text_content("#status") or "")
    assert (await second.text_content("#status") or "").startswith("Connected · serving 6")
    assert second_errors == []
    assert floor.errors == []


@pytest.mark.skipif(
    not Path(__file__).parents[2].joinpath("booth_client", "capture_agent.py").exists(),
    reason="needs the booth's capture agent (booth_client/capture_agent.py), not yet wired",
)
async def test_capture_from_the_console_then_verdicts_and_an_outcome_with_its_receipt(
    tmp_path: Path,
) -> None:
    """A separate floor (one booth): Capture per document, pictures pushed live, verdicts,
    an outcome with the audit receipt shown, and the outcome in the export. (The walk-in's
    member is not in any directory here, so the claim cannot be approved: it is sent for
    follow-up; test_console_workbench.py approves one field by field.)"""
    async with running_server(server_settings(tmp_path)) as server:
        await add_user(server, "siti", capacity=1)
        async with (
            booth_processes(server, 1, tmp_path / "booths") as _booths,
            chromium() as browser,
        ):
            page, errors = await open_first_claim(browser, server.base_url, "siti")
            # Each picture appears without a reload (document_added).
            await capture_every_document(page)
            await accept_every_document(page)
            assert await page.is_disabled(".claim-panel .approve")
            follow_up = ".claim-panel select[aria-label='Reason for follow-up']"
            await page.select_option(follow_up, "follow_up_member_data")
            await page.click(".claim-panel .follow-up")
            receipt = await page.locator(".claim-panel .audit-hash").text_content() or ""
            from server.ports.records import OutcomeFilter

            store = server.app.state.records.store
            outcomes = await store.list_outcomes(OutcomeFilter())
            assert [o.decision for o in outcomes] == ["needs_follow_up"]
            seq = outcomes[0].audit_seq
            assert receipt == {e.seq: e async for e in store.audit_entries(up_to=seq)}[seq].hash
            # In the export a supervisor takes.
            await add_user(server, "budi", role="supervisor")
            token = (await login(server, "budi"))["access_token"]
            async with httpx.AsyncClient(base_url=server.base_url) as http:
                csv = await http.get(
                    "/api/outcomes",
                    params={"format": "csv"},
                    headers={"Authorization": f"Bearer {token}"},
                )
            # (Every field is quoted: the export escapes formulas, OWASP's CSV injection.)
            assert outcomes[0].claim_id in csv.text and '"needs_follow_up"' in csv.text
            # Ending the session frees the slot: the kiosk's next participant is served.
            first = (await tiles(page))[0]["session"]
            await page.click(".claim-panel .end-after")
            await page.wait_for_function(
                f"""() => ({TILES})().some(t => t.session !== '{first}'
                                              && t.state === 'connected')""",
                timeout=60_000,
            )
            assert errors == []
