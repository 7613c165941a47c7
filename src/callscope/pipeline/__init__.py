"""The AI pipeline's use-cases and SQL: claim a call for a job run, record every attempt and
result, archive or fail the call, re-drive a failed one. Knows no queue: jobs reach it as calls."""
