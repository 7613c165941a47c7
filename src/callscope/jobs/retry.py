"""The durable retry schedule. Pure."""

from random import Random


def requeue_delay(failed_attempts: int, rng: Random, *, base_s: float, cap_s: float) -> float:
    """Full-jitter exponential backoff: uniform(0, min(cap, base * 2**(n-1))) seconds."""
    ceiling = min(cap_s, base_s * 2 ** max(failed_attempts - 1, 0))
    return rng.uniform(0.0, ceiling)


def attempts_left(used: int, budget: int) -> int:
    return max(0, budget - used)
