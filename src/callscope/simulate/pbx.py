"""The fake PBX: declares calls, streams their packets (lost, duplicated, reordered as
planned) in real time or faster, completes them, and checks what the service counted."""

import asyncio
import base64
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx

from callscope.simulate.plan import FRAME_SECONDS, CallPlan, frames_of, plan_call, tone
from callscope.simulate.speech import recordings


@dataclass(frozen=True, slots=True)
class SimulationOptions:
    url: str
    token: str
    calls: int = 10
    concurrency: int = 10
    seconds: float = 5.0  # length of a call without speech
    loss: float = 0.0
    duplicates: float = 0.0
    reorder: float = 0.0
    speed: float = 1.0  # 1: real time; 0: as fast as the service answers
    speech: bool = False
    seed: int | None = None


@dataclass(slots=True)
class SimulationReport:
    calls: int = 0
    packets_sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    missing_as_planned: int = 0  # calls whose final missing count equals the packets lost
    call_ids: list[str] = field(default_factory=list)


async def simulate(options: SimulationOptions) -> SimulationReport:
    rng = random.Random(options.seed)  # noqa: S311  (a simulation, not a secret)
    speech = recordings() if options.speech else []
    audio = [r.mulaw() for r in speech] or [tone(options.seconds)]
    plans = [
        plan_call(
            frames_of(audio[n % len(audio)]),
            loss=options.loss,
            duplicates=options.duplicates,
            reorder=options.reorder,
            rng=rng,
        )
        for n in range(options.calls)
    ]
    run = uuid.uuid4().hex[:6]
    report = SimulationReport()
    limit = asyncio.Semaphore(options.concurrency)
    headers = {"Authorization": f"Bearer {options.token}"}
    async with httpx.AsyncClient(base_url=options.url, headers=headers, timeout=30) as client:

        async def one(n: int, plan: CallPlan) -> None:
            async with limit:
                metadata: dict[str, object] = {"simulated": True}
                if speech:
                    metadata["recording"] = speech[n % len(speech)].path.name
                await _stream_call(
                    client,
                    f"sim-{run}-{n:04d}",
                    plan,
                    metadata=metadata,
                    options=options,
                    report=report,
                )

        await asyncio.gather(*(one(n, plan) for n, plan in enumerate(plans)))
    return report


async def _stream_call(
    client: httpx.AsyncClient,
    call_id: str,
    plan: CallPlan,
    *,
    metadata: dict[str, object],
    options: SimulationOptions,
    report: SimulationReport,
) -> None:
    declared = await client.post(
        "/v1/calls",
        json={"call_id": call_id, "encoding": "mulaw", "sample_rate": 8000, "metadata": metadata},
    )
    declared.raise_for_status()
    report.calls += 1
    report.call_ids.append(call_id)
    started = time.monotonic()
    for index, send in enumerate(plan.sends):
        if options.speed > 0:
            due = started + index * FRAME_SECONDS / options.speed
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        response = await client.post(
            f"/v1/call/stream/{call_id}",
            json={
                "sequence": send.sequence,
                "data": base64.b64encode(send.frame).decode(),
                "timestamp": time.time(),
            },
        )
        report.packets_sent += 1
        report.statuses[response.status_code] += 1
    completed = await client.post(
        f"/v1/calls/{call_id}/complete", json={"final_sequence": plan.last_sequence}
    )
    completed.raise_for_status()
    if completed.json()["packets"]["missing"] == len(plan.lost):
        report.missing_as_planned += 1
