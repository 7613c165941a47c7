"""Which part of a file a `Range` header asks for (RFC 9110 §14.1.2), one range at a time."""

import pytest

from callscope.api.byte_ranges import ByteRange, requested_range
from callscope.errors import RangeNotSatisfiable


@pytest.mark.parametrize(
    ("header", "wanted"),
    [
        ("bytes=0-99", ByteRange(0, 99)),
        ("bytes=44-", ByteRange(44, 999)),
        ("bytes=990-5000", ByteRange(990, 999)),  # the end is clamped to the file
        ("bytes=-10", ByteRange(990, 999)),  # the last 10 bytes
        ("bytes=-5000", ByteRange(0, 999)),  # more than there is: all of it
        ("bytes=999-999", ByteRange(999, 999)),
        (" bytes=5-6 ", ByteRange(5, 6)),
    ],
)
def test_a_single_range_is_served(header: str, wanted: ByteRange) -> None:
    assert requested_range(header, 1000) == wanted


@pytest.mark.parametrize(
    "header",
    [None, "bytes=0-1,5-6", "items=0-1", "bytes=9-3", "bytes=-", "bytes=a-b", "0-10"],
)
def test_what_is_not_one_byte_range_gets_the_whole_file(header: str | None) -> None:
    assert requested_range(header, 1000) is None


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=1000-", 1000), ("bytes=-0", 1000), ("bytes=0-", 0)]
)
def test_a_range_past_the_end_cannot_be_served(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as refused:
        requested_range(header, size)
    assert refused.value.headers == (("Content-Range", f"bytes */{size}"),)
    assert refused.value.status == 416
