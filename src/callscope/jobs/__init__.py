"""Durable AI jobs: the only package that knows pgqueuer."""
