"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright.

Chromium comes from the system (`apt-get install chromium`; `.ci/run` installs it), never
from Playwright's download. Without it the test is skipped with that instruction, unless
CALLSCOPE_REQUIRE_BROWSER=1 (as in CI) turns the skip into a failure.
"""

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import httpx
import pytest
from playwright.async_api import Browser, Page, Request, async_playwright, expect
from websockets.asyncio.client import connect

from callscope.ai.factory import flaky_mock
from callscope.calls.vocabulary import Track
from callscope.db.engine import create_engine
from callscope.ingest.native import binary_frame
from callscope.jobs.breaker import BreakerChange, BreakerState
from callscope.jobs.provider_health import HealthAnnouncer
from callscope.settings import Settings
from tests.factories import INGEST, SUPERVISOR, SUPERVISOR_TOKEN, audio, packet_body
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
    "--autoplay-policy=no-user-gesture-required",  # the call view's players start on a click
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


async def _new_page(
    browser: Browser, errors: list[str], *, service_workers: Literal["allow", "block"] = "allow"
) -> Page:
    page = await browser.new_page(
        viewport={"width": 1400, "height": 800}, service_workers=service_workers
    )
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
        segments = transcript.json()["ai"]["transcript"]["segments"]
        await expect(page.locator("#d-transcript .segment")).to_have_text(
            [f"Caller: {segment['text']}" for segment in segments]  # speaker-labelled lines
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


async def _sign_in(page: Page, http_base: str) -> None:
    await page.goto(f"{http_base}/dashboard")
    await page.get_by_label("Supervisor token").fill(SUPERVISOR_TOKEN)
    await page.get_by_role("button", name="Connect").click()
    await expect(page.locator("#connection")).to_have_text("Live")


async def test_the_dashboard_says_while_the_ai_provider_is_degraded(
    browser: Browser, settings: Settings
) -> None:
    """A worker's breaker opening reaches the page as a notice, not as a call; a supervisor
    who connects meanwhile sees it too, and it goes once the breaker closes."""
    errors: list[str] = []
    engine = create_engine(settings.require_database_url(), pool_size=1)
    announce = HealthAnnouncer(engine, worker="worker-a:1")
    notice = "#ai-degraded"
    try:
        async with served(settings) as server:
            page = await _new_page(browser, errors)
            await _sign_in(page, server.http)
            await expect(page.locator(notice)).to_be_hidden()

            announce(BreakerChange(BreakerState.open, BreakerState.closed, 0.8, 20, 10.0))
            await expect(page.locator(notice)).to_contain_text("AI provider degraded")
            await expect(page.locator(notice)).to_contain_text("80 % of recent provider calls")
            await expect(page.locator("tr[data-call-id]")).to_have_count(0)  # not a call
            await expect(page.locator("#empty")).to_be_visible()

            later = await _new_page(browser, errors)
            await _sign_in(later, server.http)
            await expect(later.locator(notice)).to_contain_text("AI provider degraded")

            announce(BreakerChange(BreakerState.half_open, BreakerState.open, 0.8, 20, 0.0))
            announce(BreakerChange(BreakerState.closed, BreakerState.half_open, 0.0, 1, 0.0))
            await expect(page.locator(notice)).to_be_hidden()
            await expect(later.locator(notice)).to_be_hidden()
    finally:
        await engine.dispose()
    assert errors == []


async def two_sided_call(
    server_http: str, ws: str, call_id: str, *, agent_frames: int, dropped: range = range(0)
) -> None:
    """2 s of caller audio (100 packets of 20 ms) over HTTP, without the packets `dropped`,
    and `agent_frames` of agent audio over callscope's stream, whose `end` completes the
    call."""
    async with httpx.AsyncClient(base_url=server_http) as http:
        for sequence in (n for n in range(1, 101) if n not in dropped):
            response = await http.post(
                f"/v1/call/stream/{call_id}", json=packet_body(sequence), headers=INGEST
            )
            assert response.status_code == 202
    async with connect(f"{ws}/v1/calls/{call_id}/media", additional_headers=INGEST) as socket:
        for sequence in range(1, agent_frames + 1):
            await socket.send(binary_frame(Track.outbound, sequence, 1.0, audio(sequence)))
        await socket.send('{"type": "end", "final_sequences": {"inbound": 100}}')
        async for message in socket:
            if '"ended"' in str(message):
                break


@pytest.mark.parametrize("service_workers", ["allow", "block"], ids=["streamed", "whole"])
async def test_the_call_view_plays_each_track_and_shows_where_packets_were_dropped(
    browser: Browser, settings: Settings, service_workers: Literal["allow", "block"]
) -> None:
    """With service workers (HTTPS or localhost) the players stream the WAV in byte ranges
    through audio-sw.js, which adds the token; without, each track is fetched whole."""
    errors: list[str] = []
    audio_requests: list[Request] = []
    async with served(settings) as server:
        await two_sided_call(
            server.http, server.ws, "listen-1", agent_frames=100, dropped=range(41, 51)
        )
        ai = settings.model_copy(update={**FAST_AI, "ai_failure_rate": 0.0})
        page = await _new_page(browser, errors, service_workers=service_workers)
        page.context.on(
            "request", lambda r: audio_requests.append(r) if "/audio" in r.url else None
        )
        await _sign_in(page, server.http)
        row = page.locator('tr[data-call-id="listen-1"]')
        async with worker_running(ai, flaky_mock(ai)):
            await expect(row.locator(".badge")).to_have_text("Archived", timeout=30_000)
        if service_workers == "allow":  # registered at sign-in: in control before a call opens
            await page.wait_for_function("navigator.serviceWorker.controller !== null")
        # Counts per track: in the live row's tooltips and in the call view.
        await expect(row.locator("td").nth(2)).to_have_attribute("title", "Caller: 90 · Agent: 100")
        await expect(row.locator("td").nth(3)).to_have_attribute("title", "Caller: 10 · Agent: 0")
        await row.click()
        await expect(page.locator("#d-packets div")).to_have_text(
            [
                "Caller: 90 received · 10 missing · 0 late · 0 duplicate",
                "Agent: 100 received · 0 missing · 0 late · 0 duplicate",
            ]
        )

        # The strip: one lane per track; the caller's has one gap, 40 % in, 10 % wide.
        caller = page.locator('#d-timeline .lane-row[data-track="inbound"]')
        agent = page.locator('#d-timeline .lane-row[data-track="outbound"]')
        gap = caller.locator(".gap")
        await expect(gap).to_have_count(1)
        await expect(gap).to_have_attribute("data-first", "41")
        await expect(gap).to_have_attribute("data-last", "50")
        await expect(agent.locator(".gap")).to_have_count(0)
        lane = await caller.locator(".lane").bounding_box()
        hole = await gap.bounding_box()
        assert lane is not None
        assert hole is not None
        assert abs((hole["x"] - lane["x"]) / lane["width"] - 0.40) < 0.01
        assert abs(hole["width"] / lane["width"] - 0.10) < 0.01
        # The mock transcribes one segment per second of each track.
        await expect(caller.locator(".seg")).to_have_count(2)
        await expect(agent.locator(".seg")).to_have_count(2)

        # A player per track, loaded with the token in a header, never in the URL.
        players = page.locator("#d-players audio")
        await expect(players).to_have_count(2)
        for track in ("inbound", "outbound"):
            await page.wait_for_function(
                "(track) => document.querySelector(`#d-players audio[data-track=${track}]`)"
                ".readyState >= HTMLMediaElement.HAVE_FUTURE_DATA",  # `canplay` has fired
                arg=track,
            )
        assert all("token" not in request.url for request in audio_requests)
        if service_workers == "allow":
            await _streamed_with_the_token(audio_requests)
        else:
            assert len(audio_requests) == 2
            for request in audio_requests:
                assert request.headers["authorization"] == f"Bearer {SUPERVISOR_TOKEN}"

        # Clicking the caller's second segment plays the caller's track from 1 s.
        await caller.locator(".seg").nth(1).click()
        await page.wait_for_function(
            "() => { const a = document.querySelector('#d-players audio[data-track=inbound]');"
            " return !a.paused && a.currentTime > 1.0; }"
        )
        assert await page.evaluate(
            "document.querySelector('#d-players audio[data-track=outbound]').paused"
        )
        await expect(caller.locator(".playhead")).to_be_visible()
        OUTPUT.mkdir(exist_ok=True)
        await page.screenshot(
            path=OUTPUT / f"dashboard-listen-{service_workers}.png", full_page=True
        )
    assert errors == []


async def _streamed_with_the_token(audio_requests: list[Request]) -> None:
    """Each track's audio reached the server from the service worker, with the token in a
    header and the player's byte range, answered 206."""
    sent = [r for r in audio_requests if r.service_worker is not None]
    for track in ("inbound", "outbound"):
        mine = [r for r in sent if r.url.endswith(f"track={track}")]
        assert mine, f"no request for the {track} track came from the service worker"
        for request in mine:
            headers = await request.all_headers()
            assert headers["authorization"] == f"Bearer {SUPERVISOR_TOKEN}"
        ranged = [r for r in mine if "range" in await r.all_headers()]
        assert ranged, f"the {track} player sent no byte range"
        response = await ranged[0].response()
        assert response is not None
        assert response.status == 206
