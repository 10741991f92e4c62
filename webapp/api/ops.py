"""Operations: liveness, readiness, metrics, the OpenAPI document."""
from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST

from webapp import jsonio, metrics
from webapp.api import services
from webapp.cache import redis_bound
from webapp.errors import ServiceUnavailable

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    """200 while the process serves."""
    return jsonio.response({"status": "ok"})


def _check_mysql(svc):
    with svc.db.connection(timeout=1) as con:
        with con.cursor() as cur:
            cur.execute("SELECT 1")
    return "ok"


@bp.get("/readyz")
def readyz():
    """Can the API serve? 200 ok/degraded; 503 naming what is down."""
    svc = services()
    checks = {}
    try:
        checks["mysql"] = _check_mysql(svc)
    except ServiceUnavailable as err:
        checks["mysql"] = err.code
    try:
        with redis_bound(min(1.0, svc.settings.redis_timeout)):
            stats = svc.queue.stats()
        checks["redis"] = "ok"
        checks["queue"] = {"depth": stats["depth"], "oldest_age_s": stats["oldest_age_s"]}
        checks["workers"] = {"alive": stats["alive"]}
    except ServiceUnavailable as err:
        checks["redis"] = err.code
    down = [name for name in ("mysql", "redis") if checks[name] != "ok"]
    if down:
        body = {"status": "unavailable", "down": down, "checks": checks}
        return jsonio.response(body, 503, {"Retry-After": "5"})
    status = "ok" if checks["workers"]["alive"] > 0 else "degraded"
    return jsonio.response({"status": status, "checks": checks})


@bp.get("/metrics")
def prometheus_metrics():
    """Prometheus text format: this gunicorn's workers summed, plus cluster series from Redis."""
    svc = services()
    with redis_bound(svc.settings.redis_timeout):
        page = metrics.render(svc)
    return Response(page, content_type=CONTENT_TYPE_LATEST)


_DOCUMENT = None


@bp.get("/openapi.json")
def openapi_document():
    """The OpenAPI 3.1 document of the whole API."""
    global _DOCUMENT
    if _DOCUMENT is None:
        from webapp.openapi import document

        _DOCUMENT = jsonio.dumps(document())
    return jsonio.response(_DOCUMENT)
