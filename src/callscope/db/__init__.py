"""Database plumbing: metadata base, engines, migrations, the embedded server."""
