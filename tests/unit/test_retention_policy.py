"""Retention's pure parts: the policy from the settings, cutoffs, batch sizing, the CLI's lines."""

from datetime import UTC, datetime, timedelta

import pytest

from callscope.retention import PruneReport, RetentionPolicy, describe
from callscope.retention.policy import calls_in_batch
from callscope.settings import Settings

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_the_policy_comes_from_the_settings() -> None:
    settings = Settings(
        _env_file=None,
        retain_audio_days=30,
        retain_events_days=7.5,
        prune_batch_size=50,
        prune_interval=60,
    )
    policy = RetentionPolicy.from_settings(settings)
    assert policy == RetentionPolicy(audio_days=30, events_days=7.5, batch_size=50, interval=60)
    assert policy.is_active
    assert policy.cutoffs(NOW).audio == NOW - timedelta(days=30)
    assert policy.cutoffs(NOW).events == NOW - timedelta(days=7, hours=12)


def test_unset_retention_keeps_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLSCOPE_RETAIN_AUDIO_DAYS", raising=False)
    monkeypatch.delenv("CALLSCOPE_RETAIN_EVENTS_DAYS", raising=False)
    policy = RetentionPolicy.from_settings(Settings(_env_file=None))
    assert not policy.is_active
    cutoffs = policy.cutoffs(NOW)
    assert (cutoffs.audio, cutoffs.events) == (None, None)


@pytest.mark.parametrize(
    ("packets", "batch_size", "chosen"),
    [
        ([3, 3, 3], 10, 3),  # all fit
        ([4, 4, 4], 10, 2),  # the third would pass the limit
        ([5, 5], 10, 2),  # exactly the limit
        ([3000, 1], 500, 1),  # a long call goes alone, 500 packets per transaction
        ([1, 3000], 500, 1),  # and is not added to a short one
        ([0] * 20, 5, 5),  # calls without packets: still at most batch_size calls
        ([], 5, 0),
    ],
)
def test_a_batch_takes_the_calls_whose_packets_fit(
    packets: list[int], batch_size: int, chosen: int
) -> None:
    candidates = [(f"c{n}", count) for n, count in enumerate(packets)]
    assert calls_in_batch(candidates, batch_size) == [f"c{n}" for n in range(chosen)]


def test_the_lines_say_what_went_and_what_is_kept() -> None:
    report = PruneReport(calls=2, packets=12, events=9, queue_log=2, batches=3)
    lines = describe(report, RetentionPolicy(audio_days=30, events_days=None), dry_run=False)
    assert lines == [
        "callscope: pruned in 3 transactions",
        "  audio: dropped the packets of 2 ARCHIVED or FAILED calls that ended over 30 days "
        "ago (12 packets)",
        "  events: kept forever (CALLSCOPE_RETAIN_EVENTS_DAYS is unset)",
        "  queue log: kept forever (CALLSCOPE_RETAIN_EVENTS_DAYS is unset)",
    ]
    dry = describe(report, RetentionPolicy(audio_days=None, events_days=0.5), dry_run=True)
    assert dry == [
        "callscope: dry run, nothing changed",
        "  audio: kept forever (CALLSCOPE_RETAIN_AUDIO_DAYS is unset)",
        "  events: would drop 9 call events older than 0.5 days",
        "  queue log: would drop 2 queue log rows older than 0.5 days",
    ]


def test_reports_add_up() -> None:
    total = PruneReport(calls=1, packets=2, batches=1) + PruneReport(events=3, batches=2)
    assert total == PruneReport(calls=1, packets=2, events=3, batches=3)
    assert total.removed_anything
    assert not PruneReport().removed_anything
