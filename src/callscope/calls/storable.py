"""What PostgreSQL can store of a client's text and JSON (a call's metadata, a Twilio mark's
name): text without NUL characters and valid as UTF-8 (no lone surrogate, which JSON's
`\\ud83d` escapes can make), finite numbers (Python's JSON parser reads `NaN`, `Infinity` and
`1e400`; jsonb takes none of them), and JSON nested at most `MAX_JSON_DEPTH` deep. Checked
before anything is written, so such input is refused as invalid instead of failing in the
database after part of a request has been stored."""

import math
from typing import Final

MAX_JSON_DEPTH: Final = 32  # objects and arrays within each other, the outermost counting 1


def text_problem(text: str) -> str | None:
    """Why PostgreSQL could not store `text`; None when it can."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate)"
    return None


def json_problem(value: object, *, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why PostgreSQL could not store `value` (parsed JSON) as jsonb; None when it can. Walks
    with its own stack: a hostile depth costs no recursion."""
    pending: list[tuple[object, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if (problem := text_problem(item)) is not None:
                return f"a string {problem}"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "a number is not finite"
        elif isinstance(item, dict | list):
            if depth == max_depth:
                return f"it is nested more than {max_depth} levels deep"
            if isinstance(item, dict):
                pending.extend((key, depth) for key in item)
                pending.extend((child, depth + 1) for child in item.values())
            else:
                pending.extend((child, depth + 1) for child in item)
    return None
