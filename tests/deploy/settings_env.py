"""Compare the environment a deployment gives callscope with callscope's own `Settings`."""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Final

import pytest
from fastapi.routing import APIRoute

from callscope.api.health import router as health_router
from callscope.settings import Settings

PREFIX: Final = "CALLSCOPE_"
SETTING_NAMES: Final = frozenset(f"{PREFIX}{name.upper()}" for name in Settings.model_fields)


def unknown_names(names: set[str]) -> set[str]:
    """The names among `names` that no field of Settings reads (typos, removed settings)."""
    return {name for name in names if name not in SETTING_NAMES}


def health_get_paths() -> set[str]:
    """The GET routes of the probes' router (/healthz, /readyz, /metrics)."""
    return {
        route.path
        for route in health_router.routes
        if isinstance(route, APIRoute) and "GET" in (route.methods or set())
    }


@contextmanager
def settings_from(env: Mapping[str, str]) -> Iterator[Settings]:
    """Settings as a process with exactly this CALLSCOPE_ environment (and no .env) builds
    them: the values must be valid, not only the names."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith(PREFIX)]:
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        yield Settings(_env_file=None)
