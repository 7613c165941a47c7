"""Tokens in query strings never reach a log line."""

import logging

from callscope.logging import RedactQueryTokens


def _uvicorn_line(path: str) -> logging.LogRecord:
    return logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:50000", path),
        None,
    )


def test_a_token_in_the_query_is_blanked() -> None:
    record = _uvicorn_line("/ws/supervisor?since=4&token=s3cr3t-token&call_id=a")
    assert RedactQueryTokens().filter(record)
    line = record.getMessage()
    assert "s3cr3t" not in line
    assert "/ws/supervisor?since=4&token=[redacted]&call_id=a" in line


def test_lines_without_tokens_are_unchanged() -> None:
    record = _uvicorn_line("/ws/supervisor?since=4")
    RedactQueryTokens().filter(record)
    assert record.getMessage() == '127.0.0.1:50000 - "WebSocket /ws/supervisor?since=4" [accepted]'
