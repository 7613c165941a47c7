"""callscope: voice-AI orchestration for call centres."""

__version__ = "0.1.0"
