"""Operations: liveness, readiness, metrics, the OpenAPI document."""
from typing import Any

from flask import Blueprint, Response, request
from prometheus_client import CONTENT_TYPE_LATEST

from webapp import jsonio, metrics
from webapp.api.request import key_ring, storage
from webapp.api.responses import json_response
from webapp.http.errors import from_storage
from webapp.storage.errors import StorageError
from webapp.storage.services import Services

bp = Blueprint("ops", __name__)


@bp.get("/livez")
@bp.get("/healthz")
def livez() -> Response:
    """200 while the process answers (liveness: restart it if this fails). /healthz is the older name."""
    return json_response({"status": "ok"})


def _check_mysql(svc: Services) -> str:
    with svc.db.connection(timeout=1) as con, con.cursor() as cur:
        cur.execute("SELECT 1")
    return "ok"


@bp.get("/readyz")
def readyz() -> Response:
    """Can the API serve? 200 ok/degraded; 503 only when Redis is down (nothing can be written).

    MySQL alone down is 200 `degraded`: cached reads answer and writes queue, so a
    load balancer should keep sending traffic. The checks (which may name an error
    from a server) are shown only to a caller with a valid API key; anonymous
    callers get the status and what is down.
    """
    detailed = key_ring().identify(request.headers.get("Authorization")) is not None
    if request.headers.get("Authorization") and not detailed:
        key_ring().require(request.headers.get("Authorization"), "read")  # 401, as everywhere else
    svc = storage()
    checks: dict[str, Any] = {}
    try:
        checks["mysql"] = _check_mysql(svc)
    except StorageError as err:
        checks["mysql"] = from_storage(err).code
    try:
        stats = svc.queue.stats(timeout=min(1.0, svc.settings.redis_timeout))
        # Full: Redis is at maxmemory with nothing it may evict; reads serve, writes get 503.
        checks["redis"] = ("aof_write_failed" if not stats["aof_ok"] else "full" if stats["memory"]["full"]
                           else "ok")
        checks["queue"] = {"depth": stats["depth"], "bytes": stats["bytes"], "oldest_age_s": stats["oldest_age_s"],
                           "durability": svc.settings.write_durability}
        checks["workers"] = {"alive": stats["alive"]}
        trouble = stats["trouble"]
        checks["drain"] = {"retrying": trouble is not None, **(trouble or {})}
    except StorageError as err:
        checks["redis"] = from_storage(err).code
    down = [name for name in ("mysql", "redis") if checks[name] not in ("ok", "full", "aof_write_failed")]
    shown = {"checks": checks} if detailed else {}
    if "redis" in down:
        body = {"status": "unavailable", "down": down, **shown}
        return json_response(body, 503, {"Retry-After": "5"})
    healthy = (not down and checks["workers"]["alive"] > 0 and checks["redis"] == "ok"
               and not checks["drain"]["retrying"])
    return json_response({"status": "ok" if healthy else "degraded", **({"down": down} if down else {}), **shown})


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    """Prometheus text format: this gunicorn's workers summed, plus cluster series from Redis."""
    return Response(metrics.render(storage().queue), content_type=CONTENT_TYPE_LATEST)


_DOCUMENT: str | None = None


@bp.get("/openapi.json")
def openapi_document() -> Response:
    """The OpenAPI 3.1 document of the whole API."""
    global _DOCUMENT
    if _DOCUMENT is None:
        from webapp.api.openapi import document

        _DOCUMENT = jsonio.dumps(document())
    return json_response(_DOCUMENT)
