"""The PostgreSQL NOTIFY channels callscope uses (LISTENed to by `realtime/bridge.py`)."""

from typing import Final

EVENTS_CHANNEL: Final = "callscope_events"  # one call_events row per notification (migration 0003)
PROGRESS_CHANNEL: Final = "callscope_progress"  # call ids a committed ingest batch touched
AI_HEALTH_CHANNEL: Final = "callscope_ai_health"  # a worker's circuit breaker changed state
