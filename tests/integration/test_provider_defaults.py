"""The real engines are built as they are: no failure wrapper unless one is asked for."""

from contextlib import AsyncExitStack

import pytest

from callscope.ai.factory import build_provider
from callscope.ai.flaky import Flaky
from callscope.settings import Settings

pytestmark = pytest.mark.slow  # loads the Whisper model (a few seconds on 2 busy cores)


async def test_the_local_engines_are_built_without_injected_failures() -> None:
    async with AsyncExitStack() as stack:
        local = await build_provider(Settings(_env_file=None, ai_provider="local"), stack)
    assert not isinstance(local, Flaky)
