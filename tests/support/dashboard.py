"""The supervisor dashboard in Chromium: log in, read what it shows, compare with the core."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from playwright.async_api import Page

from server.floor import views
from tests.support.accounts import PASSWORD
from tests.support.live_server import LiveServer

# What the page shows, read from its DOM (data attributes the renderer keeps current).
READ_PAGE = """() => ({
  waiting: Number(document.querySelector('#queue-total .waiting').dataset.value),
  branches: Object.fromEntries([...document.querySelectorAll('#queue-rows tr')]
      .map(tr => [tr.dataset.branch, Number(tr.querySelector('.waiting').dataset.value)])),
  csos: Object.fromEntries([...document.querySelectorAll('#csos .cso')].map(c => [c.dataset.cso, {
      state: c.dataset.state, load: Number(c.dataset.load), capacity: Number(c.dataset.capacity),
      sessions: [...c.querySelectorAll('.session')].map(s => [s.dataset.session, s.dataset.state]),
  }])),
})"""


def artifacts_dir() -> Path:
    path = Path(os.environ.get("LOKET_ARTIFACTS", "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


async def open_dashboard(page: Page, base_url: str, username: str, query: str = "") -> None:
    await page.goto(f"{base_url}/supervisor/{query}")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("#login button[type=submit]")
    await page.wait_for_selector("#dash:not([hidden])")
    await page.wait_for_function("() => Number(document.body.dataset.renders || 0) > 0")


def server_floor(server: LiveServer) -> dict[str, Any]:
    """The same numbers, from the server's floor core."""
    view = views.floor_view(server.app.state.floor.core)
    return {
        "waiting": view.queue.waiting,
        "branches": dict(view.queue.by_branch),
        "csos": {
            c.cso_id: {
                "state": c.state,
                "load": c.load,
                "capacity": c.capacity,
                "sessions": [[s.session_id, s.state] for s in c.sessions],
            }
            for c in view.csos
        },
    }


async def page_floor(page: Page) -> dict[str, Any]:
    shown: dict[str, Any] = await page.evaluate(READ_PAGE)
    return shown
