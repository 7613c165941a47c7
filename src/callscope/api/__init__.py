"""HTTP edge: parsing, status codes, auth; no SQL and no business rules."""
