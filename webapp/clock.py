"""Time in one form: integer microseconds since the epoch, UTC; RFC 3339 at the edges."""
import re
import time
from datetime import UTC, datetime, timedelta, timezone

_EPOCH = datetime(1970, 1, 1)
MAX_US = 253402300800 * 1_000_000  # 10000-01-01: past MySQL's DATETIME range
_US = timedelta(microseconds=1)
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def now_us() -> int:
    """The current time in microseconds."""
    return time.time_ns() // 1000


def to_rfc3339(us: int) -> str:
    """'2026-11-23T06:35:00.123456Z' for a time in microseconds."""
    seconds, micros = divmod(int(us), 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"


def parse_rfc3339(text: str) -> int:
    """Microseconds for an RFC 3339 date-time (offset required); ValueError otherwise."""
    m = _RFC3339.match(text)
    if not m:
        raise ValueError("must be an RFC 3339 date-time such as 2026-11-23T06:35:00Z")
    fraction = (m.group(7) or ".0")[1:7].ljust(6, "0")
    zone = m.group(8)
    tz = UTC if zone in "Zz" else timezone(
        (1 if zone[0] == "+" else -1) * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    )
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    dt = datetime(year, month, day, hour, minute, second, int(fraction), tzinfo=tz)
    us = (dt.astimezone(UTC).replace(tzinfo=None) - _EPOCH) // _US
    if not 0 <= us < MAX_US:  # DATETIME range: year 1970..9999
        raise ValueError("must be between 1970 and 9999")
    return us


def from_datetime(dt: datetime) -> int:
    """Microseconds for a naive UTC datetime read from MySQL."""
    return (dt - _EPOCH) // _US


def to_datetime(us: int) -> datetime:
    """A naive UTC datetime for MySQL DATETIME(6) columns."""
    return _EPOCH + timedelta(microseconds=int(us))
