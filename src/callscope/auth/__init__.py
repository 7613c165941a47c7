"""Bearer tokens: who may ingest, who may supervise."""
