"""The one rule for call ids: 1 to 128 characters of A-Z a-z 0-9 . _ : -, not only dots ("." and
".." cannot be addressed in a URL path). Pure."""

import re
from typing import Annotated, Final

from pydantic import Field

CALL_ID_PATTERN: Final = r"^[A-Za-z0-9._:-]*[A-Za-z0-9_:-][A-Za-z0-9._:-]*$"
MAX_CALL_ID_LENGTH: Final = 128
CALL_ID_DESCRIPTION: Final = (
    "The call's id: 1 to 128 characters of A-Z a-z 0-9 . _ : -, not only dots."
)

_CALL_ID: Final = re.compile(CALL_ID_PATTERN)


def is_call_id(value: str) -> bool:
    return len(value) <= MAX_CALL_ID_LENGTH and _CALL_ID.fullmatch(value) is not None


CallId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_CALL_ID_LENGTH,
        pattern=CALL_ID_PATTERN,
        description=CALL_ID_DESCRIPTION,
        examples=["CA5f2c9e-0001"],
    ),
]
