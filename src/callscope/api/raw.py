"""Answers written straight to ASGI `send`, for the code paths that run below FastAPI."""

from starlette.types import Message, Receive, Send

from callscope.api.problems import PROBLEM_JSON, service_error_body
from callscope.errors import ServiceError


async def send_body(
    send: Send,
    *,
    status: int,
    content_type: str,
    body: bytes,
    headers: tuple[tuple[str, str], ...] = (),
) -> None:
    raw_headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in headers),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def send_problem(send: Send, exc: ServiceError, instance: str) -> None:
    await send_body(
        send,
        status=exc.status,
        content_type=PROBLEM_JSON,
        body=service_error_body(exc, instance),
        headers=exc.headers,
    )


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands `body` (already read) to the app, then defers to the real one."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
