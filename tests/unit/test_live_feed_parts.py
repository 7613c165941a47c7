"""The live feed's pure parts: the event envelope, progress coalescing, bounded queues."""

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from callscope.calls.read_model import AiSummary, CallProgress, CallSummary, PacketCounts
from callscope.calls.states import CallState
from callscope.realtime.coalesce import ProgressCoalescer
from callscope.realtime.messages import (
    Outgoing,
    event_message,
    progress_message,
    snapshot_message,
    utc_iso,
)
from callscope.realtime.subscriber import Resync, Subscriber

AT = datetime(2026, 11, 28, 17, 0, 0, 123456, tzinfo=UTC)


def _row(**overrides: object) -> dict[str, object]:
    return {
        "id": 7,
        "call_id": "c-1",
        "type": "call.state_changed",
        "from_state": "IN_PROGRESS",
        "to_state": "COMPLETED",
        "data": {"reason": "complete_request"},
        "created_at": AT,
        **overrides,
    }


def test_a_state_change_carries_from_and_to_in_its_data() -> None:
    message = event_message(_row())
    assert (message.event_id, message.call_id) == (7, "c-1")
    assert json.loads(message.text) == {
        "v": 1,
        "type": "call.state_changed",
        "event_id": 7,
        "call_id": "c-1",
        "time": "2026-11-28T17:00:00.123456Z",
        "data": {"reason": "complete_request", "from": "IN_PROGRESS", "to": "COMPLETED"},
    }


def test_other_events_carry_their_data_unchanged() -> None:
    data = {"attempt": 2, "step": "transcribe", "outcome": "failed", "error": "503"}
    row = _row(type="call.ai_attempt", from_state=None, to_state=None, data=data)
    assert json.loads(event_message(row).text)["data"] == data


def test_a_notify_payload_time_in_another_zone_becomes_utc() -> None:
    paris = AT.astimezone(timezone(timedelta(hours=1))).isoformat()
    assert json.loads(event_message(_row(created_at=paris)).text)["time"] == utc_iso(AT)


def _counts(received: int) -> PacketCounts:
    return PacketCounts(received=received, duplicates=0, late=0, missing=0)


def test_progress_carries_many_calls_and_no_event_id() -> None:
    message = progress_message([CallProgress(call_id="c-1", packets=_counts(3), tracks=[])], AT)
    assert (message.event_id, message.call_id) == (None, None)
    body = json.loads(message.text)
    assert body["type"] == "call.progress"
    assert body["data"] == {
        "calls": [
            {
                "call_id": "c-1",
                "packets": {"received": 3, "duplicates": 0, "late": 0, "missing": 0},
                "tracks": [],
            }
        ]
    }


def test_snapshot_encodes_datetimes() -> None:
    call = CallSummary(
        call_id="c",
        state=CallState.IN_PROGRESS,
        created_at=AT,
        updated_at=AT,
        packets=_counts(0),
        tracks=[],
        ai=AiSummary(attempts_used=0, last_error=None, sentiment=None),
    )
    text = snapshot_message([call], last_event_id=4, reason="x", truncated=False)
    assert json.loads(text)["calls"][0]["created_at"] == "2026-11-28T17:00:00.123456Z"


def test_coalescer_reports_each_call_once_per_take() -> None:
    coalescer = ProgressCoalescer()
    for _ in range(100):
        coalescer.mark("b a")
    coalescer.mark("c")
    assert coalescer.take() == (["a", "b", "c"], None)
    assert coalescer.take() == ([], None)
    coalescer.mark("a")
    assert len(coalescer) == 1


def test_coalescer_keeps_the_earliest_unnamed_batch_and_restores_a_failed_take() -> None:
    coalescer = ProgressCoalescer()
    coalescer.mark("a")
    coalescer.mark("*1764340002.5")
    coalescer.mark("*1764340001.25")
    taken = coalescer.take()
    assert taken == (["a"], 1764340001.25)
    coalescer.mark("b")
    coalescer.mark("*1764340003")
    coalescer.restore(*taken)
    assert coalescer.take() == (["a", "b"], 1764340001.25)


def _message(event_id: int | None, call_id: str = "c-1") -> Outgoing:
    return Outgoing(event_id=event_id, call_id=call_id, text=str(event_id), type="call.created")


async def test_subscriber_hands_out_messages_in_order() -> None:
    subscriber = Subscriber(call_id=None, max_queued=10)
    for n in range(3):
        subscriber.offer(_message(n))
    assert [await subscriber.next() for _ in range(3)] == [_message(n) for n in range(3)]


async def test_a_full_queue_is_dropped_for_a_resync() -> None:
    subscriber = Subscriber(call_id=None, max_queued=3)
    for n in range(10):
        subscriber.offer(_message(n))
    assert subscriber.queued == (0, 0)
    assert subscriber.overflows == 1
    assert await subscriber.next() == Resync("overflow")
    subscriber.offer(_message(11))  # after the resync was taken, messages queue again
    assert await subscriber.next() == _message(11)


def test_queue_never_grows_past_its_bound() -> None:
    subscriber = Subscriber(call_id=None, max_queued=5)
    sizes = []
    for n in range(1000):
        subscriber.offer(_message(n))
        sizes.append(subscriber.queued[0])
    assert max(sizes) == 5


def test_a_filtered_subscriber_only_queues_its_call() -> None:
    subscriber = Subscriber(call_id="mine", max_queued=5)
    subscriber.offer(_message(1, "other"))
    subscriber.offer(_message(2, "mine"))
    assert subscriber.queued == (1, 0)


async def test_next_waits_for_an_offer() -> None:
    subscriber = Subscriber(call_id=None, max_queued=5)
    waiting = asyncio.create_task(subscriber.next())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    subscriber.offer(_message(1))
    assert await asyncio.wait_for(waiting, 1) == _message(1)


async def test_next_times_out_cleanly_when_nothing_comes() -> None:
    subscriber = Subscriber(call_id=None, max_queued=5)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(subscriber.next(), 0.01)
    subscriber.offer(_message(1))
    assert await subscriber.next() == _message(1)


def _progress(call_id: str, received: int) -> CallProgress:
    return CallProgress(call_id=call_id, packets=_counts(received), tracks=[])


async def test_progress_keeps_only_the_latest_per_call_and_never_overflows() -> None:
    subscriber = Subscriber(call_id=None, max_queued=2)
    for n in range(100):
        subscriber.offer_progress([_progress("a", n), _progress("b", n)])
    subscriber.offer(_message(1))
    assert (subscriber.queued, subscriber.overflows) == ((1, 2), 0)
    assert await subscriber.next() == _message(1)  # events go first
    progress = await subscriber.next()
    assert isinstance(progress, Outgoing)
    expected = [_progress("a", 99).model_dump(), _progress("b", 99).model_dump()]
    assert json.loads(progress.text)["data"]["calls"] == expected
    assert subscriber.queued == (0, 0)


def test_a_filtered_subscriber_keeps_only_its_calls_progress() -> None:
    subscriber = Subscriber(call_id="mine", max_queued=2)
    subscriber.offer_progress([_progress("other", 1)])
    assert subscriber.queued == (0, 0)
    subscriber.offer_progress([_progress("other", 2), _progress("mine", 2)])
    assert subscriber.queued == (0, 1)


def test_a_resync_drops_pending_progress() -> None:
    subscriber = Subscriber(call_id=None, max_queued=2)
    subscriber.offer_progress([_progress("a", 1)])
    subscriber.resync("reconnect")
    subscriber.offer_progress([_progress("a", 2)])  # the owed snapshot carries it
    assert subscriber.queued == (0, 0)


async def test_a_client_that_keeps_overflowing_cannot_keep_up() -> None:
    now = [0.0]
    subscriber = Subscriber(call_id=None, max_queued=1, clock=lambda: now[0])

    async def overflow_at(moment: float) -> None:
        now[0] = moment
        subscriber.offer(_message(1))
        subscriber.offer(_message(2))  # one more than fits
        assert await subscriber.next() == Resync("overflow")  # the feed sends a snapshot

    for moment in (0, 30, 100, 120):
        await overflow_at(moment)
        assert not subscriber.cannot_keep_up  # never three overflows within 60 s
    await overflow_at(130)
    assert subscriber.cannot_keep_up  # 100, 120, 130
