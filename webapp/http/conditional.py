"""Conditional reads of an item (RFC 9110, section 13): its ETag, and If-None-Match.

An item's version changes with every accepted write of its key (a delete
included) and never goes back, and the version fixes the whole answer: the
data, and `updated_at`, which is the acceptance time of that version. So the
version is a strong validator, whether the item is answered from the cache,
from MySQL or as a pending write. Both doors use this: the cache-hit layer
below Flask (webapp/server/fastpath.py) and the Flask view.
"""
import re

# An entity-tag: an optional W/ and a quoted opaque tag (which may hold commas, not quotes).
_ENTITY_TAG = re.compile(r'[ \t,]*(W/)?("[\x21\x23-\x7e\x80-\xff]*")[ \t]*(?:,|$)')


def etag(version: int) -> str:
    """The strong ETag of an item at `version`, e.g. "v1767225600000000"."""
    return f'"v{version}"'


def none_match(header: str | None, tag: str) -> bool:
    """True when an If-None-Match field value matches `tag`: the answer is then 304.

    `*` matches any item that exists; otherwise a comma-separated list of
    entity-tags, compared weakly (W/ ignored), as RFC 9110 says for
    If-None-Match. A field that does not parse matches nothing.
    """
    if header is None:
        return False
    value = header.strip()
    if value == "*":
        return True
    pos, opaque = 0, tag.removeprefix("W/")
    while value[pos:].strip(" \t,"):  # empty list elements are allowed
        found = _ENTITY_TAG.match(value, pos)
        if found is None:
            return False
        if found.group(2) == opaque:
            return True
        pos = found.end()
    return False
