"""Write receipts: where a queued write stands (queued, persisted or dead)."""
import re

from flask import Blueprint, Response

from webapp.api.auth import require_read_key
from webapp.api.request import storage
from webapp.api.responses import json_response
from webapp.http.errors import NotFound
from webapp.http.render import write_status

bp = Blueprint("writes", __name__, url_prefix="/api/v1/writes")
WRITE_ID = re.compile(r"^w_[0-9a-f]{26}$")


@bp.get("/<write_id>")
def get_write(write_id: str) -> Response:
    """A write's receipt (kept at least 24 h)."""
    require_read_key()
    stored = storage().queue.receipt(write_id) if WRITE_ID.match(write_id) else None
    if stored is None:
        raise NotFound("No write with this id (receipts are kept for 24 hours).")
    return json_response(write_status(write_id, stored))
