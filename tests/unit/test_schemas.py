"""PacketIn is strict: no coercion, strict base64, finite timestamps, no unknown fields; and
the published pattern for base64 agrees with the validator."""

import base64
import json
import re
from typing import Any

import pytest
from pydantic import ValidationError

from callscope.calls.schemas import BASE64_PATTERN, PacketIn, base64_length_limit

GOOD: dict[str, Any] = {"sequence": 1, "data": "AAEC", "timestamp": 1764340000.5}


def test_valid_packet_decodes_its_audio() -> None:
    packet = PacketIn.model_validate(GOOD)
    assert packet.data == b"\x00\x01\x02"


def test_integer_timestamp_is_accepted() -> None:
    assert PacketIn.model_validate({**GOOD, "timestamp": 1764340000}).timestamp == 1764340000


def test_a_whole_number_written_as_a_float_is_an_integer_as_json_schema_says() -> None:
    assert PacketIn.model_validate_json(json.dumps({**GOOD, "sequence": 7.0})).sequence == 7


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sequence", "7"),
        ("sequence", 7.5),
        ("sequence", True),
        ("sequence", -1),
        ("sequence", 2**53),  # past what every JSON parser reads exactly
        ("sequence", None),
        ("data", ""),
        ("data", "AAE"),  # missing padding
        ("data", "AA=C"),  # padding inside
        ("data", "QR=="),  # non-canonical trailing bits
        ("data", "AA EC"),  # whitespace
        ("data", "AAEC\n"),
        ("data", "AA-_"),  # url-safe alphabet
        ("data", "!!!!"),
        ("data", 1234),
        ("timestamp", float("nan")),
        ("timestamp", float("inf")),
        ("timestamp", -1.0),
        ("timestamp", "1764340000"),
    ],
)
def test_invalid_field_is_rejected(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        PacketIn.model_validate({**GOOD, field: value})
    assert caught.value.errors()[0]["loc"][0] == field


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(ValidationError):
        PacketIn.model_validate({**GOOD, "codec": "pcmu"})


def test_missing_field_is_rejected() -> None:
    with pytest.raises(ValidationError):
        PacketIn.model_validate_json(json.dumps({"sequence": 1, "data": "AAEC"}))


@pytest.mark.parametrize(
    "data", ["AAEC", "AA==", "AAE=", "QR==", "AAE", "AA=C", "AA EC", "AA-_", "", "Q===", "AB=="]
)
def test_the_published_base64_pattern_accepts_exactly_what_the_validator_accepts(
    data: str,
) -> None:
    try:
        PacketIn.model_validate({**GOOD, "data": data})
    except ValidationError:
        accepted = False
    else:
        accepted = True
    assert (re.fullmatch(BASE64_PATTERN, data) is not None) == accepted


@pytest.mark.parametrize("max_bytes", [1, 2, 3, 4, 5, 6, 65536])
def test_the_published_length_limit_is_exact(max_bytes: int) -> None:
    limit = base64_length_limit(max_bytes)
    for size in range(max(1, max_bytes - 4), max_bytes + 4):
        encoded = base64.b64encode(bytes(size)).decode()
        assert _meets(limit, encoded) == (size <= max_bytes), (max_bytes, size)


def _meets(schema: dict[str, Any], text: str) -> bool:
    if "anyOf" in schema:
        return any(_meets(branch, text) for branch in schema["anyOf"])
    return (
        schema.get("minLength", 0) <= len(text) <= schema.get("maxLength", len(text))
        and re.search(schema.get("pattern", ""), text) is not None
    )
