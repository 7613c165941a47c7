"""The ingest path's lock-free collectors expose what prometheus-client's own types would."""

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from callscope.metrics import BatchHistogram, PacketCounter

BOUNDS = (1.0, 2.0, 5.0, 10.0)


def _samples(registry: CollectorRegistry) -> set[str]:
    """The exposition's sample lines, without comments and `_created` timestamps."""
    lines = generate_latest(registry).decode().splitlines()
    return {line for line in lines if not line.startswith("#") and "_created" not in line}


def test_batch_histogram_exposes_what_a_histogram_does() -> None:
    values = [0.5, 1.0, 1.5, 2.0, 7.0, 10.0, 11.0, 250.0]
    theirs, mine = CollectorRegistry(), CollectorRegistry()
    histogram = Histogram("sizes", "Sizes.", buckets=BOUNDS, registry=theirs)
    batch = BatchHistogram("sizes", "Sizes.", BOUNDS)
    mine.register(batch)
    for value in values:
        histogram.observe(value)
    batch.observe(values[0])
    batch.observe_many(values[1:])

    assert _samples(mine) == _samples(theirs)
    assert 'sizes_bucket{le="2.0"} 4.0' in _samples(mine)


def test_packet_counter_exposes_what_a_labelled_counter_does() -> None:
    theirs, mine = CollectorRegistry(), CollectorRegistry()
    counter = Counter("packets", "Packets.", ["path", "outcome"], registry=theirs)
    packets = PacketCounter("packets", "Packets.")
    mine.register(packets)
    counter.labels("http", "accepted").inc(3)
    counter.labels("http", "duplicate").inc()
    counter.labels("twilio", "accepted").inc(500)
    packets.add("http", "accepted")
    packets.add_all({("http", "accepted"): 2, ("twilio", "accepted"): 500})
    packets.add("http", "duplicate")

    assert _samples(mine) == _samples(theirs)
    assert 'packets_total{outcome="accepted",path="twilio"} 500.0' in _samples(mine)
