"""structlog setup: JSON lines in production, a readable console in development."""

import logging
import re
import sys
from typing import Final

import structlog

from callscope import tracing

_QUERY_TOKEN = re.compile(r"(\btoken=)[^&\s\"']+")


_SERVER_LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access")
# Where lines of the standard library's loggers go (uvicorn's, pgqueuer's, asyncio's):
# rendered as callscope's own once configure_logging has run.
_standard_handler: logging.Handler | None = None


def configure_logging(*, level: str, json_lines: bool) -> None:
    """callscope's lines, and those of libraries that log through the standard library,
    as one JSON object per line on stderr (or a console format)."""
    global _standard_handler  # noqa: PLW0603 - one log format per process
    root = logging.getLogger()
    if _standard_handler is not None:
        root.removeHandler(_standard_handler)
    # Plain tracebacks: a pretty one with local variables could print a token or audio.
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[*_context_processors(), structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    _standard_handler = logging.StreamHandler(sys.stderr)
    _standard_handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_context_processors(),
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root.addHandler(_standard_handler)
    # Libraries' warnings and errors, as before (their info lines are noise: one per provider
    # request, per transcription); uvicorn's loggers keep their own level.
    root.setLevel(max(logging.WARNING, logging.getLevelNamesMapping()[level]))


def _context_processors() -> list[structlog.types.Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        add_trace_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


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


def take_over_server_logs() -> None:
    """uvicorn's loggers, once uvicorn has configured them: their lines rendered as
    callscope's own (with the request's context), not in uvicorn's text format, and
    `RedactQueryTokens` on them."""
    for name in _SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if logger.handlers and _standard_handler is not None:
            logger.handlers = [_standard_handler]
        logger.addFilter(RedactQueryTokens())


def _redact(text: str) -> str:
    return _QUERY_TOKEN.sub(r"\1[redacted]", text)
