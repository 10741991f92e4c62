"""Write receipts: where a queued write stands (queued, persisted or dead)."""
import re
import time

from flask import Blueprint, Response

from webapp.api.auth import require_read_key
from webapp.api.request import storage
from webapp.api.responses import json_response
from webapp.http.errors import NotFound, ReceiptExpired
from webapp.http.render import write_status

bp = Blueprint("writes", __name__, url_prefix="/api/v1/writes")
WRITE_ID = re.compile(r"^w_[0-9a-f]{26}$")


@bp.get("/<write_id>")
def get_write(write_id: str) -> Response:
    """A write's receipt (kept RECEIPT_TTL, at least 24 h); 404 receipt_expired past that."""
    require_read_key()
    receipts = storage().receipts
    stored = receipts.get(write_id) if WRITE_ID.match(write_id) else None
    if stored is None and WRITE_ID.match(write_id) and receipts.expired(write_id, int(time.time() * 1000)):
        hours = storage().settings.receipt_ttl / 3600
        raise ReceiptExpired(f"This write's receipt was kept for {hours:g} hours (RECEIPT_TTL) and is gone; "
                             "its write was persisted or dead-lettered long ago.")
    if stored is None:
        raise NotFound(f"No write with this id (receipts are kept for {storage().settings.receipt_ttl / 3600:g} "
                       "hours).")
    return json_response(write_status(write_id, stored))
