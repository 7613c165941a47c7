"""The supervisor dashboard: one static page over the live feed and the read API."""
