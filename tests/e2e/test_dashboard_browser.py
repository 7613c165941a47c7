"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright.

Chromium comes from the system (`apt-get install chromium`; `.ci/run` installs it), never
from Playwright's download. Without it the test is skipped with that instruction, unless
CALLSCOPE_REQUIRE_BROWSER=1 (as in CI) turns the skip into a failure.
"""

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from callscope.ai.factory import flaky_mock
from callscope.settings import Settings
from tests.factories import INGEST, SUPERVISOR, SUPERVISOR_TOKEN, packet_body
from tests.integration.ai_helpers import FAST_AI, worker_running
from tests.live import served

OUTPUT = Path(__file__).parents[2] / "test-output"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    found = os.environ.get("CALLSCOPE_CHROMIUM") or shutil.which("chromium")
    if found:
        return found
    message = "Chromium is not installed: apt-get install chromium (or set CALLSCOPE_CHROMIUM)"
    if os.environ.get("CALLSCOPE_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = _chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


async def _new_page(browser: Browser, errors: list[str]) -> Page:
    page = await browser.new_page(viewport={"width": 1400, "height": 800})
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return page


async def _post_first_packet(http: httpx.AsyncClient, call_id: str) -> None:
    response = await http.post(f"/v1/call/stream/{call_id}", json=packet_body(1), headers=INGEST)
    assert response.status_code == 202


async def test_dashboard_shows_a_call_appear_and_change_state(
    browser: Browser, settings: Settings
) -> None:
    errors: list[str] = []
    async with served(settings) as server, httpx.AsyncClient(base_url=server.http) as http:
        page = await _new_page(browser, errors)
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        await page.goto(f"{server.http}/dashboard")
        await page.get_by_label("Supervisor token").fill(SUPERVISOR_TOKEN)
        await page.get_by_role("button", name="Connect").click()
        await expect(page.locator("#connection")).to_have_text("Live")
        await expect(page.get_by_label("Supervisor token")).to_be_hidden()

        for sequence in (1, 2, 4):
            response = await http.post(
                "/v1/call/stream/browser-1", json=packet_body(sequence), headers=INGEST
            )
            assert response.status_code == 202
        row = page.locator('tr[data-call-id="browser-1"]')
        await expect(row.locator(".badge")).to_have_text("In progress")
        await expect(row.locator("td").nth(2)).to_have_text("3")  # packets
        await expect(row.locator("td").nth(3)).to_have_text("1")  # missing: sequence 3

        response = await http.post("/v1/calls/browser-1/complete", headers=INGEST)
        assert response.status_code == 200
        await expect(row.locator(".badge")).to_have_text("Completed")
        await expect(row).to_have_attribute("data-state", "COMPLETED")

        await row.click()
        await expect(page.locator("#d-call")).to_have_text("browser-1")
        await expect(page.locator("#d-history li")).to_have_count(2)
        await expect(page.locator("#d-history")).to_contain_text("IN_PROGRESS → COMPLETED")

        ai = settings.model_copy(update={**FAST_AI, "ai_failure_rate": 0.5, "ai_seed": 2})
        async with worker_running(ai, flaky_mock(ai)):
            await expect(row.locator(".badge")).to_have_text("Archived", timeout=30_000)
        transcript = await http.get("/v1/calls/browser-1", headers=SUPERVISOR)
        sentiment = transcript.json()["ai"]["sentiment"]
        await expect(row.locator("td").nth(7)).to_have_text(
            f"{sentiment['label']} {sentiment['score']:.2f}"
        )
        await expect(page.locator("#d-transcript")).to_have_text(
            transcript.json()["ai"]["transcript"]["text"]
        )
        await expect(page.locator("#d-history")).to_contain_text("call.archived")

        # A dropped connection: the page reconnects by itself, resuming from its last event,
        # and what happened meanwhile shows up.
        await page.evaluate("socket.close()")
        await _post_first_packet(http, "while-away")
        await expect(page.locator('tr[data-call-id="while-away"]')).to_be_visible()
        assert "since=" in sockets[-1]
        assert len(sockets) == 2

        OUTPUT.mkdir(exist_ok=True)
        await page.screenshot(path=OUTPUT / "dashboard.png", full_page=True)
    assert errors == []


async def test_dashboard_refuses_a_wrong_token_and_asks_again(
    browser: Browser, settings: Settings
) -> None:
    errors: list[str] = []
    async with served(settings) as server:
        page = await _new_page(browser, errors)
        await page.goto(f"{server.http}/dashboard")
        await page.get_by_label("Supervisor token").fill("not-a-token")
        await page.get_by_role("button", name="Connect").click()
        await expect(page.locator("#sign-in-error")).to_have_text("That token is not valid.")
        await expect(page.get_by_label("Supervisor token")).to_be_visible()
        await expect(page.locator("#main")).to_be_hidden()
        assert await page.evaluate("localStorage.getItem('callscope.supervisorToken')") is None
    assert errors == []
