"""HTTP byte ranges (RFC 9110 §14) for files served whole from memory: one range per request.

A `Range` header this module does not serve (several ranges, another unit, bad syntax) is
ignored, as RFC 9110 allows: the whole file is sent with 200. A range that starts past the
end is 416 `range_not_satisfiable` with `Content-Range: bytes */<size>`.
"""

import re
from dataclasses import dataclass
from typing import Final

from fastapi.responses import Response

from callscope.errors import RangeNotSatisfiable

_SINGLE_RANGE: Final = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass(frozen=True, slots=True)
class ByteRange:
    first: int
    last: int  # inclusive


def requested_range(header: str | None, size: int) -> ByteRange | None:
    """The one range `header` asks of a `size`-byte file, or None to send it whole. Raises
    RangeNotSatisfiable when the range lies entirely past the end (or the file is empty)."""
    if header is None:
        return None
    match = _SINGLE_RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text:  # `bytes=-N`: the last N bytes
        if not last_text:
            return None
        length = int(last_text)
        if length == 0 or size == 0:
            raise _unsatisfiable(header, size)
        return ByteRange(max(0, size - length), size - 1)
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None  # invalid syntax: ignored
    if first >= size:
        raise _unsatisfiable(header, size)
    return ByteRange(first, min(int(last_text), size - 1) if last_text else size - 1)


def _unsatisfiable(header: str, size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(f"{header[:60]} is outside the {size} bytes of this file", size=size)


def ranged_response(
    body: bytes, header: str | None, *, media_type: str, headers: dict[str, str]
) -> Response:
    """200 with the whole body, or 206 with the requested part; both say `Accept-Ranges`."""
    answer_headers = {**headers, "Accept-Ranges": "bytes"}
    wanted = requested_range(header, len(body))
    if wanted is None:
        return Response(body, media_type=media_type, headers=answer_headers)
    answer_headers["Content-Range"] = f"bytes {wanted.first}-{wanted.last}/{len(body)}"
    return Response(
        body[wanted.first : wanted.last + 1],
        status_code=206,
        media_type=media_type,
        headers=answer_headers,
    )
