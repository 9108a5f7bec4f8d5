"""The verification workbench in real headless Chromium against a real `loket booth`
process: the officer sees the member record in full beside the KTP, the machine's
readings pre-filled, marks a name as differing with a reason, cannot approve (neither in
the console nor through the API), then confirms it and approves; the export and the
supervisor's outcome list show what was compared; the audit chain verifies.

The kiosk's synthetic participant shows their own documents (drawn from their NIK and
KPJ, a public-domain portrait on the KTP) and the same face to the face camera. The
membership table knows them under a name spelled differently from their documents
("DIYANA HAKIM" against "DIAN HAKIM"), so the machine says the name differs: the officer
agrees at first, then decides it is the same person, which overrides the advice."""

from __future__ import annotations

import dataclasses
import os
import re
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest

from booth_client.sources.id_cards import person_for
from server.domain.members import MemberRecord, MemberSource
from server.ports.records import OutcomeFilter
from tests.support.accounts import add_user, login
from tests.support.booths import booth_processes
from tests.support.browser import chromium
from tests.support.claim_panel import (
    TILES,
    accept_every_document,
    capture_every_document,
    open_first_claim,
)
from tests.support.dashboard import open_dashboard
from tests.support.live_server import running_server, server_settings

pytestmark = pytest.mark.browser

NIK = "3171015208900001"  # a woman born 12-08-1990
KPJ = "12345678901"
PORTRAIT = Path(__file__).resolve().parents[1] / "support" / "faces_photos" / "hopper.jpg"
ARTIFACTS = Path(os.environ.get("LOKET_TEST_ARTIFACTS", "test-artifacts"))
SCREENSHOT = ARTIFACTS / "console-workbench.png"


def member() -> MemberRecord:
    p = person_for(NIK, KPJ)
    assert p.name == "DIAN HAKIM"  # what the documents say
    return MemberRecord(
        MemberSource.IMPORT, datetime.now(UTC), full_name="DIYANA HAKIM",
        birth_place=p.birth_place, birth_date=p.birth_date, sex=p.sex, address=p.address,
        employer_name="PT MAJU JAYA", employment_end=date(2026, 1, 31), bank_name=p.bank,
        account_number=p.account_number, account_holder=p.name,
    )  # fmt: skip


@pytest.mark.timeout(420)
async def test_the_officer_verifies_field_by_field_then_approves(tmp_path: Path) -> None:
    # Generous reading timeout: the first reading waits for its worker on a shared box.
    settings = server_settings(tmp_path, reading_workers=1, face_workers=1, reading_timeout=120)
    kiosk = {
        "LOKET_BOOTH_WALK_IN_NIK": NIK, "LOKET_BOOTH_WALK_IN_KPJ": KPJ,
        "LOKET_BOOTH_WALK_IN_CLAIM_TYPE": "retirement",
        "LOKET_BOOTH_SYNTHETIC_PORTRAIT": str(PORTRAIT),
    }  # fmt: skip
    async with running_server(settings) as server:
        store = server.app.state.records.store
        record = member()
        await store.write(lambda tx: tx.put_member(NIK, KPJ, record))  # the local directory
        await add_user(server, "siti", capacity=1)
        async with (
            booth_processes(server, 1, tmp_path / "booths", env=kiosk),
            chromium() as browser,
        ):
            page, errors = await open_first_claim(browser, server.base_url, "siti", 90_000)
            # The member record in full: the whole NIK, confirmed by the directory.
            member_box = page.locator(".claim-panel .member[data-confirmed='true']")
            await member_box.wait_for()
            assert await member_box.locator("dd[data-field='NIK']").text_content() == NIK
            assert "DIYANA HAKIM" in (await member_box.text_content() or "")
            assert "from the membership directory" in (await member_box.text_content() or "")
            # Every document from the console's Capture buttons; each picture is pushed.
            kinds = await capture_every_document(page)
            assert kinds == ["kpj_card", "ktp", "kk", "buku_tabungan"]
            await accept_every_document(page)
            # Accepting the KTP asked the booth for a face still; the readings come pushed.
            await page.wait_for_selector(
                ".claim-panel .document[data-kind='face_still']", timeout=60_000
            )
            for kind in ("ktp", "kpj_card", "buku_tabungan"):
                row = f".claim-panel .document[data-kind='{kind}'] .doc-fields"
                await page.wait_for_selector(f"{row}:has-text('read by machine')", timeout=180_000)
            await page.click(".claim-panel .document[data-kind='ktp'] .doc-verify")
            verify = page.locator(".claim-panel .verify[data-kind='ktp']")
            await verify.wait_for()
            assert await page.get_attribute("#claim", "data-wide") == "true"
            await page.wait_for_selector(
                ".verify .face-strip[data-band='likely_same']", timeout=60_000
            )
            suggested = await verify.locator(".field").evaluate_all(
                "rows => Object.fromEntries(rows.map(r => [r.dataset.field, r.dataset.suggested]))"
            )
            assert suggested == {"nik": "matches", "name": "differs", "birth_place": "matches",
                                 "birth_date": "matches", "sex": "matches",
                                 "photo": "matches"}  # fmt: skip
            nik_row = verify.locator(".field[data-field='nik']")
            assert NIK in (await nik_row.text_content() or "")  # record and reading, in full
            # Keyboard first: Enter takes the advice and moves on; D asks for a reason.
            await nik_row.focus()
            await page.keyboard.press("Enter")
            await page.wait_for_selector(".verify .field[data-field='nik'][data-state='matches']")
            await page.keyboard.press("d")
            reason = page.locator(".verify .field[data-field='name'] .field-reason")
            await reason.select_option("field_spelling_variant")
            await page.wait_for_selector(".verify .field[data-field='name'][data-state='differs']")
            for field in ("birth_place", "birth_date", "sex", "photo"):
                await page.locator(f".verify .field[data-field='{field}']").focus()
                await page.keyboard.press("Enter")
                await page.wait_for_selector(
                    f".verify .field[data-field='{field}'][data-state='matches']"
                )
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SCREENSHOT))
            # The other documents, in the order they came: ] moves on, M sets "matches".
            done = {"ktp"}
            for _ in range(2):
                await page.keyboard.press("]")
                view = page.locator(".claim-panel .verify:not([data-kind='{}'])".format(
                    "']):not([data-kind='".join(done)))  # fmt: skip
                await view.wait_for()
                kind = str(await view.get_attribute("data-kind"))
                for row in await view.locator(".field").all():
                    await row.focus()
                    await page.keyboard.press("m")
                    field = await row.get_attribute("data-field")
                    done_row = f".verify[data-kind='{kind}'] .field[data-field='{field}']"
                    await page.wait_for_selector(f"{done_row}[data-state='matches']")
                done.add(kind)
            assert done == {"ktp", "kpj_card", "buku_tabungan"}
            # A differing name: approval refused, in the console and by the API.
            await page.click(".claim-panel .document[data-kind='ktp'] .doc-verify")
            await page.wait_for_selector(".claim-panel .verify[data-kind='ktp']")
            assert await page.is_disabled(".claim-panel .approve")
            problems = await page.text_content(".claim-panel .approval-problems") or ""
            assert "Name not confirmed as matching" in problems
            claim_id = (await page.evaluate(TILES))[0]["claimId"]
            token = (await login(server, "siti"))["access_token"]
            async with httpx.AsyncClient(base_url=server.base_url) as http:
                refused = await http.post(
                    f"/api/claims/{claim_id}/outcome", json={"decision": "approved"},
                    headers={"Authorization": f"Bearer {token}",
                             "Idempotency-Key": uuid.uuid4().hex},
                )  # fmt: skip
            assert refused.status_code == 422 and refused.json()["error"]["code"] == (
                "identity_unconfirmed"
            )
            # The officer decides it is the same person: confirmed, over the machine's advice.
            await page.locator(".verify .field[data-field='name']").focus()
            await page.keyboard.press("m")
            await page.wait_for_selector(".verify .field[data-field='name'] .override")
            await page.keyboard.press("Escape")
            await page.wait_for_selector(".claim-panel .approve:not([disabled])")
            await page.click(".claim-panel .approve")
            await page.wait_for_selector(".claim-panel .decided")
            receipt = await page.text_content(".claim-panel .audit-hash") or ""
            assert errors == []

            # The outcome keeps what was compared; the chain covers it.
            (outcome,) = await store.list_outcomes(OutcomeFilter())
            assert outcome.decision == "approved"
            seq = outcome.audit_seq
            entry = {e.seq: e async for e in store.audit_entries(up_to=seq)}[seq]
            assert receipt == entry.hash
            assert entry.details["verification_sha256"] == outcome.verification_sha256
            evidence = outcome.verification
            assert evidence is not None and evidence["identity"]["confirmed"]
            names = [f for f in evidence["fields"] if f["field"] == "name" and f["kind"] == "ktp"]
            assert names == [dataclasses.asdict(_name_evidence(names[0]))]
            # The KPJ card's name was read as differing too, and M confirmed it: an override.
            assert evidence["summary"]["overridden"] == ["kpj_card.name", "ktp.name"]
            assert evidence["face"]["band"] == "likely_same"
            assert evidence["models"]["reading"] and evidence["models"]["face"]

            await add_user(server, "budi", role="supervisor")
            await add_user(server, "audrey", role="auditor")
            budi = (await login(server, "budi"))["access_token"]
            audrey = (await login(server, "audrey"))["access_token"]
            async with httpx.AsyncClient(base_url=server.base_url) as http:
                as_budi = {"Authorization": f"Bearer {budi}"}
                csv = (await http.get("/api/outcomes?format=csv", headers=as_budi)).text
                as_audrey = {"Authorization": f"Bearer {audrey}"}
                verified = (await http.get("/api/audit/verify", headers=as_audrey)).json()
            header, row = csv.splitlines()[0].split(","), csv.splitlines()[1]
            assert "overrides" in header and '"kpj_card.name ktp.name"' in row
            assert '"likely_same"' in row
            assert NIK not in csv and re.search(r'"\*{12}0001"', row)  # masked for supervisors
            assert verified["intact"] is True, verified
            # The supervisor's outcome list shows the override.
            board = await browser.new_page(viewport={"width": 1366, "height": 768})
            await open_dashboard(board, server.base_url, "budi")
            cell = board.locator("#outcomes td.checks")
            await cell.wait_for()
            assert "overrides: kpj card.name, ktp.name" in (await cell.text_content() or "")
            assert "face likely same" in (await cell.text_content() or "")


@dataclasses.dataclass
class _Name:
    document_id: str
    kind: str
    field: str
    record: str
    read: str
    confidence: float
    suggested: str
    state: str
    reason_code: None
    override: bool
    checked_by: str


def _name_evidence(got: dict[str, object]) -> _Name:
    """What the outcome must say of the KTP's name: the record's spelling, the reading
    (with its confidence), the machine's "differs", the officer's "matches", an override."""
    assert isinstance(got["confidence"], float) and got["confidence"] >= 0.8
    return _Name(str(got["document_id"]), "ktp", "name", "DIYANA HAKIM", "DIAN HAKIM",
                 got["confidence"], "differs", "matches", None, True, "siti")  # fmt: skip
