"""When to retry and how long to wait: Retry-After with jitter, else capped exponential backoff.

Retried: 429 and 503 (the server says "not now", with Retry-After), 502 and
504 (a proxy could not reach a server), and failures with no answer at all
(refused, reset, closed mid-request, timed out). Every write the client sends
carries an Idempotency-Key, so a retry of a write that did reach the queue
answers the same receipt and queues nothing twice.
"""
import email.utils
import math
import random
import time

RETRY_STATUSES = frozenset({429, 502, 503, 504})
BACKOFF_FIRST = 0.1  # seconds before the first retry without Retry-After
BACKOFF_MAX = 5.0  # the longest wait without Retry-After
JITTER_SHARE = 0.2  # Retry-After plus up to this share of it ...
JITTER_MIN = 0.1  # ... or up to this many seconds, whichever is more
RETRY_AFTER_MAX = 300.0  # a larger Retry-After is taken as this (the deadline usually ends it first)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After in seconds: delta-seconds ("5", "1.5") or an HTTP date; None if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return min(max(0.0, seconds), RETRY_AFTER_MAX)


def backoff(attempt: int, rng: random.Random | None = None) -> float:
    """The wait after failed attempt number `attempt` (1-based) with no Retry-After: between half and all
    of BACKOFF_FIRST doubled per attempt, at most BACKOFF_MAX."""
    cap = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** min(attempt - 1, 30))
    return (rng or random).uniform(cap / 2, cap)


def retry_delay(retry_after: float | None, attempt: int, rng: random.Random | None = None) -> float:
    """How long to wait before the next attempt.

    With Retry-After: at least that long (the server asked), plus jitter of up to
    JITTER_SHARE of it (at least JITTER_MIN s), so clients refused together do not
    come back together. Without: backoff(attempt).
    """
    if retry_after is None:
        return backoff(attempt, rng)
    return retry_after + (rng or random).uniform(0, max(JITTER_MIN, JITTER_SHARE * retry_after))
