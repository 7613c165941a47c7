"""The dashboard's search box, sentiment sparklines and speaker-labelled transcript, in Debian's
headless Chromium: calls whose transcripts a scripted provider dictates go through the real
pipeline (worker, redaction, storage), then a supervisor searches them."""

import httpx
from playwright.async_api import Browser, Locator, Page, expect

from callscope.ai.ports import CallAudio, Segment, Sentiment, SentimentLabel, Transcript
from callscope.settings import Settings
from tests.e2e.test_dashboard_browser import OUTPUT, _new_page, browser, two_sided_call
from tests.factories import INGEST, SUPERVISOR_TOKEN, packet_body
from tests.integration.ai_helpers import FAST_AI, worker_running
from tests.live import served

__all__ = ["browser"]  # the Chromium fixture, shared with the other dashboard test

# What each side of each call says: (start, end, text, confidence).
_SCRIPT = {
    "angry": {
        "caller": [
            (0.0, 0.9, "You charged me twice this month.", 0.93),
            (1.1, 1.9, "I will cancel my account today.", 0.31),
        ],
        "agent": [(0.5, 0.9, "I am sorry, I will refund the second charge.", 0.88)],
    },
    "happy": {"caller": [(0.0, 0.05, "Thank you, the new phone works wonderfully.", 0.9)]},
    "card": {"caller": [(0.0, 0.05, "My card is 4111 1111 1111 1111, please update it.", 0.8)]},
}
# How each transcript scores, by a word in it: the label, then each segment's score.
_MOODS = (
    ("cancel", SentimentLabel.negative, (-0.2, -0.8)),
    ("refund", SentimentLabel.positive, (0.4,)),
    ("wonderfully", SentimentLabel.positive, (0.7,)),
)


class _Scripted:
    """A provider that hears what `_SCRIPT` says: the agent's track of "angry" is the 1 s one,
    its caller's the 2 s one."""

    async def transcribe(self, call_id: str, audio: CallAudio) -> Transcript:
        sides = _SCRIPT[call_id]
        side = "agent" if "agent" in sides and audio.seconds < 1.5 else "caller"
        segments = tuple(Segment(s, e, text, confidence) for s, e, text, confidence in sides[side])
        return Transcript(text=" ".join(s.text for s in segments), segments=segments)

    async def analyze(self, transcript: Transcript) -> Sentiment:
        for word, label, trend in _MOODS:
            if word in transcript.text:
                return Sentiment(label=label, score=trend[-1], trend=trend)
        return Sentiment(label=SentimentLabel.neutral, score=0.0, trend=(0.0,))


async def _short_call(http: httpx.AsyncClient, call_id: str) -> None:
    for sequence in (1, 2, 3):
        response = await http.post(
            f"/v1/call/stream/{call_id}", json=packet_body(sequence), headers=INGEST
        )
        assert response.status_code == 202
    assert (await http.post(f"/v1/calls/{call_id}/complete", headers=INGEST)).status_code == 200


async def _signed_in(page: Page, http_base: str) -> None:
    await page.goto(f"{http_base}/dashboard")
    await page.get_by_label("Supervisor token").fill(SUPERVISOR_TOKEN)
    await page.get_by_role("button", name="Connect").click()
    await expect(page.locator("#connection")).to_have_text("Live")


async def _search(page: Page, words: str, sentiment: str = "") -> Locator:
    await page.get_by_label("Search transcripts").fill(words)
    await page.get_by_label("Sentiment", exact=True).select_option(sentiment)
    await page.get_by_role("button", name="Search", exact=True).click()
    return page.locator("#search-list li.result")


async def _points(line: Locator) -> list[tuple[float, float]]:
    drawn = await line.locator("polyline.trend").get_attribute("points")
    assert drawn is not None
    return [(float(x), float(y)) for x, y in (p.split(",") for p in drawn.split())]


async def _shows_both_speakers_and_their_trends(page: Page) -> None:
    """The call view of "angry": each segment labelled with its speaker, in time order, the
    unsure one flagged; a sparkline per speaker."""
    await expect(page.locator("#d-call")).to_have_text("angry")
    await expect(page.locator("#d-transcript .segment")).to_have_text(
        [
            "Caller: You charged me twice this month.",
            "Agent: I am sorry, I will refund the second charge.",
            "Caller: I will cancel my account today.",
        ]
    )
    await expect(page.locator("#d-transcript .segment.low-confidence")).to_have_text(
        ["Caller: I will cancel my account today."]
    )
    trends = page.locator("#d-trend .trend-row")
    await expect(trends).to_have_count(2)
    await expect(trends.nth(0)).to_have_attribute("data-speaker", "caller")
    await expect(trends.nth(1)).to_have_attribute("data-speaker", "agent")
    await expect(trends.locator("svg.sparkline").nth(0)).to_have_attribute(
        "aria-label", "Caller's sentiment trend: -0.20, -0.80"
    )


async def _shows_the_redaction_marker(page: Page) -> None:
    await expect(page.locator("#d-call")).to_have_text("card")
    mark = page.locator("#d-transcript mark.redaction")
    await expect(mark).to_have_text("[card]")
    await expect(mark).to_have_attribute("data-kind", "card")
    await expect(page.locator("#d-transcript .segment")).to_have_text(
        ["Caller: My card is [card], please update it."]
    )


async def test_search_finds_the_call_and_shows_its_trend_and_speakers(
    browser: Browser, settings: Settings
) -> None:
    errors: list[str] = []
    async with served(settings) as server, httpx.AsyncClient(base_url=server.http) as http:
        await two_sided_call(server.http, server.ws, "angry", agent_frames=50)
        for call_id in ("happy", "card"):
            await _short_call(http, call_id)
        page = await _new_page(browser, errors)
        await _signed_in(page, server.http)
        ai = settings.model_copy(update={**FAST_AI, "ai_failure_rate": 0.0})
        async with worker_running(ai, _Scripted()):
            for call_id in ("angry", "happy", "card"):
                row = page.locator(f'tr[data-call-id="{call_id}"]')
                await expect(row.locator(".badge")).to_have_text("Archived", timeout=30_000)

        results = await _search(page, "cancelled")  # stems to "cancel"
        await expect(results).to_have_count(1)
        await expect(results).to_have_attribute("data-call-id", "angry")
        await expect(page.locator("#search-status")).to_have_text("1 call matches.")
        await expect(results.locator(".result-sentiment")).to_have_text("negative -0.80")
        line = results.locator("svg.sparkline")
        await expect(line).to_have_attribute("data-points", "2")
        (_, first), (_, second) = await _points(line)
        assert second > first  # from -0.2 down to -0.8: lower on the screen

        positive = await _search(page, "", "positive")
        await expect(positive).to_have_count(1)
        await expect(positive).to_have_attribute("data-call-id", "happy")
        await expect(await _search(page, "refund", "positive")).to_have_count(0)  # agent's
        await expect(await _search(page, "card")).to_have_attribute("data-call-id", "card")
        await expect(await _search(page, "4111")).to_have_count(0)  # redacted before storage
        await expect(page.locator("#search-status")).to_have_text("No call matches.")

        # A live row draws its headline trend too, once a snapshot brought it (`call.archived`
        # messages carry the label and score only).
        await page.reload()
        await expect(page.locator("#connection")).to_have_text("Live")
        happy_row = page.locator('tr[data-call-id="happy"]')
        await expect(happy_row.locator("td").nth(7)).to_have_text("positive 0.70")
        await expect(happy_row.locator("svg.sparkline")).to_have_attribute("data-points", "1")

        await (await _search(page, "cancel")).locator("button").click()
        await _shows_both_speakers_and_their_trends(page)
        OUTPUT.mkdir(exist_ok=True)
        await page.screenshot(path=OUTPUT / "dashboard-search.png", full_page=True)
        await page.locator('tr[data-call-id="card"]').click()
        await _shows_the_redaction_marker(page)

        await page.get_by_role("button", name="Clear").click()
        await expect(page.locator("#search-results")).to_be_hidden()
    assert errors == []
