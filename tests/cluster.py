"""The cluster the e2e tests use (nginx in front of real `callscope serve` replicas, as
`python -m callscope.cluster` starts it) and the clients that go through it: a packet poster
that retries, a native media stream that reconnects and resends, and which replica holds a
connection."""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from callscope.calls.vocabulary import Track
from callscope.cluster import Cluster, ClusterPlan, Member, running_cluster
from callscope.ingest.native import binary_frame
from tests.e2e.processes import clean_env, free_port
from tests.factories import audio, packet_body

INGEST = "pbx-token"
SUPERVISOR = "sup-token"
BEARER = {"Authorization": f"Bearer {INGEST}"}


@contextmanager
def cluster_on(
    db_url: str, tmp_path: Path, *, api_replicas: int = 2, workers: int = 0, **settings: str
) -> Iterator[Cluster]:
    """A cluster on the test database with the mock AI provider, on a free port."""
    defaults = {
        "CALLSCOPE_DATABASE_URL": db_url,
        "CALLSCOPE_INGEST_TOKENS": INGEST,
        "CALLSCOPE_SUPERVISOR_TOKENS": SUPERVISOR,
        "CALLSCOPE_AI_PROVIDER": "mock",
        "CALLSCOPE_AI_LATENCY_MIN": "0",
        "CALLSCOPE_AI_LATENCY_MAX": "0.01",
        "CALLSCOPE_AI_FAILURE_RATE": "0",
        "CALLSCOPE_DRAIN_SECONDS": "0",  # no load balancer needs telling, unless a test says
    }
    env = clean_env(**{**defaults, **settings})
    plan = ClusterPlan(
        api_replicas=api_replicas, workers=workers, env=env, logs=tmp_path, port=free_port()
    )
    with running_cluster(plan) as cluster:
        yield cluster


def _established(member: Member) -> set[tuple[str, int]]:
    """The client ends of the TCP connections `member` has accepted on its port."""
    try:
        connections = psutil.Process(member.process.pid).net_connections(kind="tcp")
    except psutil.Error:
        return set()
    return {
        (c.raddr.ip, c.raddr.port)
        for c in connections
        if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == member.port and c.raddr
    }


@asynccontextmanager
async def landing(cluster: Cluster) -> AsyncIterator[list[Member]]:
    """Yields a list that, when the block ends, names the replica that accepted the one
    long-lived connection opened inside the block (through nginx)."""
    before = {replica.name: _established(replica) for replica in cluster.replicas}
    found: list[Member] = []
    yield found
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        new = [r for r in cluster.replicas if _established(r) - before[r.name]]
        if len(new) == 1:
            found.append(new[0])
            return
        await asyncio.sleep(0.05)
    raise AssertionError("could not tell which replica took the connection")


@dataclass
class RetryingPoster:
    """POSTs packets like a PBX that retries on any failure (transport error or 5xx) until
    a 202; `acked` holds every (call, sequence) acknowledged, `retries` counts the retries."""

    http: httpx.AsyncClient
    acked: set[tuple[str, int]] = field(default_factory=set)
    retries: int = 0

    async def post(self, path: str, body: dict[str, object] | None, expect: int) -> None:
        for _ in range(100):
            try:
                response = await self.http.post(path, json=body, headers=BEARER)
                if response.status_code == expect:
                    return
                assert response.status_code >= 500, response.text
            except httpx.TransportError:
                pass
            self.retries += 1
            await asyncio.sleep(0.05)
        raise AssertionError(f"{path} never answered {expect}")

    async def call(self, call_id: str, packets: int, pace: float) -> None:
        for sequence in range(1, packets + 1):
            await self.post(f"/v1/call/stream/{call_id}", packet_body(sequence), expect=202)
            self.acked.add((call_id, sequence))
            await asyncio.sleep(pace)
        await self.post(f"/v1/calls/{call_id}/complete", None, expect=200)


@dataclass
class NativeStream:
    """One call over `WS /v1/calls/{id}/media` through the load balancer, both tracks,
    keeping every frame until an ack covers it: after a dropped socket it reconnects,
    reads where the server is, and resends from there (docs/media-streams.md)."""

    ws_base: str
    call_id: str
    acked: dict[Track, int] = field(default_factory=dict)
    reconnects: int = 0
    closes: list[int | None] = field(default_factory=list)
    socket: ClientConnection | None = None
    _acks: asyncio.Event = field(default_factory=asyncio.Event)

    async def until_acked(self, through: int, within: float = 20) -> None:
        """Until an ack covers `through` on every track."""
        async with asyncio.timeout(within):
            while min(self.acked.get(track, 0) for track in Track) < through:
                self._acks.clear()
                await self._acks.wait()

    @property
    def url(self) -> str:
        return f"{self.ws_base}/v1/calls/{self.call_id}/media?token={INGEST}"

    async def open(self) -> None:
        self.socket = await connect(self.url)

    async def run(self, frames: int, pace: float) -> None:
        """Send frames 1..`frames` per track, reconnecting as needed, then end the call."""
        sent = 0
        while True:
            if self.socket is None:
                await self._reconnect()
                sent = min(self.acked.get(track, 0) for track in Track)
            assert self.socket is not None
            reader = asyncio.create_task(self._read_acks(self.socket))
            try:
                for sequence in range(sent + 1, frames + 1):
                    for track in Track:
                        frame = binary_frame(track, sequence, time.time(), audio(sequence))
                        await self.socket.send(frame)
                    sent = sequence
                    await asyncio.sleep(pace)
                await self.socket.send(json.dumps({"type": "end"}))
                await asyncio.wait_for(reader, 15)
            except ConnectionClosed:
                await asyncio.wait_for(reader, 15)
            self.closes.append(self.socket.close_code)
            if self.socket.close_code == 1000:
                return
            self.socket = None

    async def _reconnect(self) -> None:
        for _ in range(50):
            try:
                self.socket = await connect(self.url)
                break
            except (OSError, ConnectionClosed, TimeoutError):
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("the stream could not reconnect")
        self.reconnects += 1

    async def _read_acks(self, socket: ClientConnection) -> None:
        try:
            async for raw in socket:
                message = json.loads(raw)
                if message["type"] == "ack" and not message["missing"]:
                    self.acked[Track(message["track"])] = message["through"]
                    self._acks.set()
        except ConnectionClosed:
            pass
