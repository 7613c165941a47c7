"""The long-lived objects one process shares: built in the app lifespan, closed there."""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from callscope.auth.tokens import TokenChecker
from callscope.calls.processing import ProcessingService
from callscope.calls.service import CallService
from callscope.ingest.committer import GroupCommitter
from callscope.realtime.hub import Hub
from callscope.realtime.repository import LiveRepository
from callscope.settings import Settings


@dataclass(slots=True)
class Resources:
    settings: Settings
    engine: AsyncEngine
    committer: GroupCommitter
    calls: CallService
    processing: ProcessingService
    tokens: TokenChecker
    hub: Hub
    live: LiveRepository
    head_revision: str
    draining: bool = False
