"""Reading calls: list with filters and cursor pagination, one call, its history."""

import base64

import asyncpg
import httpx

from tests.factories import INGEST, SUPERVISOR, post_packet


async def _make_calls(client: httpx.AsyncClient, count: int) -> list[str]:
    call_ids = [f"list-{n:02d}" for n in range(count)]
    for call_id in call_ids:
        assert (await post_packet(client, call_id, 1)).status_code == 202
    return call_ids


async def test_pages_walk_every_call_once_newest_first(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    call_ids = await _make_calls(client, 23)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/calls", params=params, headers=SUPERVISOR)).json()
        seen += [item["call_id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 5
    assert seen == list(reversed(call_ids))
    created = [
        r["call_id"]
        for r in await db.fetch("SELECT call_id FROM calls ORDER BY created_at DESC, call_id DESC")
    ]
    assert seen == created


async def test_list_filters_by_state_and_time(client: httpx.AsyncClient) -> None:
    call_ids = await _make_calls(client, 4)
    await client.post(f"/v1/calls/{call_ids[0]}/complete", headers=INGEST)
    completed = await client.get("/v1/calls", params={"state": "COMPLETED"}, headers=SUPERVISOR)
    assert [c["call_id"] for c in completed.json()["items"]] == [call_ids[0]]
    both = await client.get(
        "/v1/calls", params=[("state", "COMPLETED"), ("state", "IN_PROGRESS")], headers=SUPERVISOR
    )
    assert len(both.json()["items"]) == 4
    newest = (await client.get(f"/v1/calls/{call_ids[-1]}", headers=SUPERVISOR)).json()
    after = await client.get(
        "/v1/calls", params={"created_after": newest["created_at"]}, headers=SUPERVISOR
    )
    assert [c["call_id"] for c in after.json()["items"]] == [call_ids[-1]]
    before = await client.get(
        "/v1/calls", params={"created_before": newest["created_at"]}, headers=SUPERVISOR
    )
    assert len(before.json()["items"]) == 3


async def test_instants_beyond_python_s_range_bound_the_list_as_written(
    client: httpx.AsyncClient,
) -> None:
    await post_packet(client, "some-call", 1)
    for params, count in (
        ({"created_after": "0001-01-01T00:00:00+01:00"}, 1),
        ({"created_before": "0001-01-01T00:00:00+01:00"}, 0),
        ({"created_before": "9999-12-31T23:59:59-01:00"}, 1),
        ({"created_after": "9999-12-31T23:59:59-01:00"}, 0),
    ):
        response = await client.get("/v1/calls", params=params, headers=SUPERVISOR)
        assert response.status_code == 200, params
        assert len(response.json()["items"]) == count, params


async def test_list_refuses_bad_parameters(client: httpx.AsyncClient) -> None:
    await post_packet(client, "some-call", 1)
    for params in (
        {"state": "ASLEEP"},
        {"limit": 0},
        {"limit": 501},
        {"created_after": "soon"},
        {"created_after": "2026-11-28"},  # a date is not an instant
        {"created_after": "2026-11-28T17:00:00"},  # nor is a time without its offset
        {"created_after": "0.5"},
        {"created_after": "2026-13-28T17:00:00Z"},
        {"cursor": base64.urlsafe_b64encode(b"2026-01-01T00:00:00+00:00|a\x00b").decode()},
        {"cursor": "17~.."},
    ):
        response = await client.get("/v1/calls", params=params, headers=SUPERVISOR)
        assert response.status_code == 422, params
        assert response.headers["content-type"] == "application/problem+json"
    huge = await client.get(
        "/v1/calls/some-call/events", params={"after": 2**63}, headers=SUPERVISOR
    )
    assert huge.status_code == 422
    bad_cursor = await client.get("/v1/calls", params={"cursor": "!!"}, headers=SUPERVISOR)
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["errors"][0]["loc"] == ["query", "cursor"]


async def test_call_detail_reports_packet_statistics(client: httpx.AsyncClient) -> None:
    for sequence in (2, 3, 6, 3):
        await post_packet(client, "stats", sequence)
    call = (await client.get("/v1/calls/stats", headers=SUPERVISOR)).json()
    assert call["state"] == "IN_PROGRESS"
    assert call["packets"] == {
        "received": 3,
        "duplicates": 1,
        "late": 0,
        "missing": 3,
        "bytes_received": 480,
    }
    assert call["tracks"] == [
        {
            "track": "inbound",
            "received": 3,
            "duplicates": 1,
            "late": 0,
            "missing": 3,
            "missing_ranges": [{"first": 1, "last": 1}, {"first": 4, "last": 5}],
            "missing_ranges_truncated": False,
            "max_sequence": 6,
            "final_sequence": None,
            "bytes_received": 480,
        }
    ]


async def test_reads_need_a_supervisor_token(client: httpx.AsyncClient) -> None:
    await post_packet(client, "secret", 1)
    for path in ("/v1/calls", "/v1/calls/secret", "/v1/calls/secret/events"):
        assert (await client.get(path, headers=INGEST)).status_code == 403
        assert (await client.get(path)).status_code == 401


async def test_unknown_call_is_404(client: httpx.AsyncClient) -> None:
    for path in ("/v1/calls/ghost", "/v1/calls/ghost/events"):
        response = await client.get(path, headers=SUPERVISOR)
        assert response.status_code == 404
        assert response.json()["code"] == "call_not_found"


async def test_events_page_with_after(client: httpx.AsyncClient) -> None:
    await post_packet(client, "hist", 1)
    await client.post("/v1/calls/hist/complete", headers=INGEST)
    first = (
        await client.get("/v1/calls/hist/events", params={"limit": 1}, headers=SUPERVISOR)
    ).json()
    assert [e["type"] for e in first["items"]] == ["call.created"]
    rest = (
        await client.get(
            "/v1/calls/hist/events", params={"after": first["next_after"]}, headers=SUPERVISOR
        )
    ).json()
    assert [e["to_state"] for e in rest["items"]] == ["COMPLETED"]
    assert rest["next_after"] is None
