"""Live supervision: PostgreSQL LISTEN → in-process hub → bounded per-supervisor queues → WS."""
