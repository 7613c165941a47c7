"""The fake PBX: streams calls (lost, duplicated, reordered as planned) in real time or
faster, over HTTP, Twilio Media Streams or callscope's own stream, with the caller's and (on
the streams) the agent's track, ends them, and checks what the service counted."""

import asyncio
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from callscope.calls.vocabulary import Track
from callscope.simulate.plan import CallPlan, frames_of, plan_call, tone
from callscope.simulate.speech import recordings
from callscope.simulate.transports import (
    HttpTransport,
    NativeTransport,
    Transport,
    TwilioTransport,
)

TransportName = Literal["http", "twilio", "stream"]


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
    transport: TransportName = "http"
    agent: bool = False  # an agent track too (the streams only: HTTP packets are the caller's)
    supervisor_token: str | None = None  # to read the counts back after a stream


@dataclass(slots=True)
class SimulationReport:
    calls: int = 0
    packets_sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)  # HTTP statuses, closes, acks
    missing_as_planned: int = 0  # calls whose every track's missing count is the planned one
    unchecked: int = 0  # calls whose counts could not be read back (no supervisor token)
    call_ids: list[str] = field(default_factory=list)


async def simulate(options: SimulationOptions) -> SimulationReport:
    if options.agent and options.transport == "http":
        raise ValueError("HTTP packets are the caller's: an agent track needs a stream")
    rng = random.Random(options.seed)  # noqa: S311  (a simulation, not a secret)
    speech = recordings() if options.speech else []
    audio = [r.mulaw() for r in speech] or [tone(options.seconds), tone(options.seconds, 330.0)]
    tracks = (Track.inbound, Track.outbound) if options.agent else (Track.inbound,)
    plans = [
        {
            track: plan_call(
                frames_of(audio[(n + offset) % len(audio)]),
                loss=options.loss,
                duplicates=options.duplicates,
                reorder=options.reorder,
                rng=rng,
            )
            for offset, track in enumerate(tracks)  # the agent speaks the next recording
        }
        for n in range(options.calls)
    ]
    run = uuid.uuid4().hex[:6]
    report = SimulationReport()
    limit = asyncio.Semaphore(options.concurrency)
    headers = {"Authorization": f"Bearer {options.token}"}
    async with httpx.AsyncClient(base_url=options.url, headers=headers, timeout=30) as client:
        transport = _transport(options, client)

        async def one(n: int, call_plans: dict[Track, CallPlan]) -> None:
            async with limit:
                metadata: dict[str, Any] = {"simulated": True}
                if speech:
                    metadata["recording"] = speech[n % len(speech)].path.name
                call_id = f"sim-{run}-{n:04d}"
                delivery = await transport.send_call(call_id, call_plans, metadata=metadata)
                report.calls += 1
                report.call_ids.append(call_id)
                report.packets_sent += delivery.frames_sent
                report.statuses.update(delivery.statuses)
                missing = delivery.missing or await _missing(client, call_id, options)
                if missing is None:
                    report.unchecked += 1
                elif _as_planned(missing, call_plans, options.transport):
                    report.missing_as_planned += 1

        await asyncio.gather(*(one(n, call_plans) for n, call_plans in enumerate(plans)))
    return report


def _transport(options: SimulationOptions, client: httpx.AsyncClient) -> Transport:
    ws_url = "ws" + options.url.removeprefix("http")
    if options.transport == "twilio":
        return TwilioTransport(ws_url, options.token, options.speed)
    if options.transport == "stream":
        return NativeTransport(ws_url, options.token, options.speed)
    return HttpTransport(client, options.speed)


async def _missing(
    client: httpx.AsyncClient, call_id: str, options: SimulationOptions
) -> dict[str, int] | None:
    """Each track's missing count, as the service says (with a supervisor token)."""
    if options.supervisor_token is None:
        return None
    response = await client.get(
        f"/v1/calls/{call_id}", headers={"Authorization": f"Bearer {options.supervisor_token}"}
    )
    response.raise_for_status()
    return {t["track"]: t["missing"] for t in response.json()["tracks"]}


def _as_planned(
    missing: dict[str, int], plans: dict[Track, CallPlan], transport: TransportName
) -> bool:
    """Whether each track's lost packets are counted missing: all of them, or on Twilio
    (whose `stop` names no last chunk) those before the last one sent."""
    return all(
        missing.get(track.value, 0)
        == (plan.lost_before_last_sent if transport == "twilio" else len(plan.lost))
        for track, plan in plans.items()
    )
