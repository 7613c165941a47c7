"""Packet ingestion: accounting rules (pure), group commit and its SQL."""
