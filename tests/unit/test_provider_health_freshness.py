"""The hub remembers which workers hold calls back, for supervisors who connect later, but
only while they keep saying so: a worker that crashed while degraded never says it closed."""

import json

from sqlalchemy.ext.asyncio import create_async_engine

from callscope.realtime.hub import DEGRADED_FRESH_S, Hub
from callscope.realtime.repository import LiveRepository


def _health(worker: str, state: str) -> str:
    return json.dumps(
        {
            "worker": worker,
            "state": state,
            "degraded": state != "closed",
            "previous": "closed" if state != "closed" else "half_open",
            "failure_rate": 0.8 if state != "closed" else 0.0,
            "calls_in_window": 20,
            "retry_in_s": 2.0 if state == "open" else 0.0,
            "time": "2026-12-05T12:00:00Z",
        }
    )


def test_a_worker_is_degraded_until_it_closes_or_falls_silent() -> None:
    now = [1000.0]
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1/none")  # never used
    hub = Hub(LiveRepository(engine), max_queued=10, clock=lambda: now[0])

    def workers() -> list[str]:
        return [json.loads(m.text)["data"]["worker"] for m in hub.degraded_providers()]

    hub.on_ai_health(_health("a:1", "open"))
    hub.on_ai_health(_health("b:2", "open"))
    assert workers() == ["a:1", "b:2"]
    hub.on_ai_health(_health("a:1", "closed"))
    assert workers() == ["b:2"]
    now[0] += DEGRADED_FRESH_S - 1
    hub.on_ai_health(_health("c:3", "half_open"))
    assert workers() == ["b:2", "c:3"]
    now[0] += 2  # b:2 said nothing for longer than DEGRADED_FRESH_S: it crashed, say
    assert workers() == ["c:3"]
