"""structlog setup: JSON lines in production, a readable console in development."""

import logging
import re
import sys

import structlog

from callscope import tracing

_QUERY_TOKEN = re.compile(r"(\btoken=)[^&\s\"']+")


def configure_logging(*, level: str, json_lines: bool) -> None:
    # Plain tracebacks: a pretty one with local variables could print a token or audio.
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_trace_id,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def add_trace_id(
    _logger: object, _method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """`trace_id` of the span current when the line is written (tracing on only)."""
    if (trace_id := tracing.trace_id_of_current_span()) is not None:
        event_dict.setdefault("trace_id", trace_id)
    return event_dict


class RedactQueryTokens(logging.Filter):
    """Blank `token=…` in log lines: uvicorn logs every WebSocket path with its query string
    (`"WebSocket /ws/supervisor?token=…" [accepted]`), and a token must never reach a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def redact_tokens_in_server_logs() -> None:
    """Install `RedactQueryTokens` on uvicorn's loggers (after uvicorn configured them)."""
    for name in ("uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).addFilter(RedactQueryTokens())


def _redact(text: str) -> str:
    return _QUERY_TOKEN.sub(r"\1[redacted]", text)
