"""The list cursor: a position in (created_at, call_id) order, `<microseconds>~<call_id>`.
Clients treat it as opaque; every string that matches `CURSOR_PATTERN` is a valid position, so
a cursor never fails to decode. Pure."""

import re
from datetime import UTC, datetime, timedelta
from typing import Final

from callscope.calls.ids import CALL_ID_PATTERN

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
CURSOR_PATTERN: Final = "^[0-9]{1,17}~" + CALL_ID_PATTERN.removeprefix("^")
_CURSOR: Final = re.compile(CURSOR_PATTERN)


def encode_cursor(created_at: datetime, call_id: str) -> str:
    return f"{(created_at - _EPOCH) // _MICROSECOND}~{call_id}"


def decode_cursor(cursor: str) -> tuple[datetime, str] | None:
    """The position a cursor names; None when it is not a cursor at all."""
    if _CURSOR.fullmatch(cursor) is None:
        return None
    micros, call_id = cursor.split("~", 1)
    return _EPOCH + int(micros) * _MICROSECOND, call_id
