"""The RateLimit and RateLimit-Policy header fields of writes (draft-ietf-httpapi-ratelimit-headers).

With WRITE_RATE_LIMIT set, every 202 and every 429 says what the API key may
still send: `RateLimit-Policy: "writes";q=100;w=60` (the limit: 100 writes a
minute) and `RateLimit: "writes";r=42;t=35` (42 may go now; the whole limit is
back in 35 s). The limiter is GCRA (lua/accept.lua), so the limit refills
steadily rather than all at once at the end of a window; on a 429, r is 0 and t
is the Retry-After, as the draft asks (Retry-After not before t).
"""
import math

from webapp.storage.queue import RateLeft

POLICY = "writes"  # the policy's name in both fields


def headers(rate: RateLeft) -> dict[str, str]:
    """The two header fields for an API key's rate as an answer leaves it."""
    return {"RateLimit-Policy": f'"{POLICY}";q={rate.limit};w={rate.window_s}',
            "RateLimit": f'"{POLICY}";r={rate.remaining};t={math.ceil(rate.reset_s)}'}
