"""Calls: state machine, persistence and use-cases."""
