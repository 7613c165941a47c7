"""AI providers: the ports, their errors, the mock, failure injection and the HTTP client."""
