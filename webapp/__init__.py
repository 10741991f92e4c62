"""Spillway's web application: create_app() builds it inside each gunicorn worker."""
from flask import Flask

from webapp import logs
from webapp.config import load_settings


def create_app(overrides=None):
    """The Flask app: settings, connections (made on first use), errors, blueprints."""
    settings = load_settings(overrides).require("mysql_url", "redis_url", "api_keys")
    logs.setup(settings.log_level, "web")
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        JSON_SORT_KEYS=False,
    )
    register_services(app, settings)
    register_errors(app)
    register_blueprints(app)
    register_middleware(app, settings)
    return app


def register_services(app, settings):
    """Attach this process's Services and key ring; nothing connects yet."""
    from webapp import cache, db
    from webapp.auth import KeyRing
    from webapp.services import Services

    services = Services(settings, role="web")
    services.keys = KeyRing(settings.api_key_list)
    app.extensions["spillway"] = services
    db.init_app(app)
    cache.init_app(app)


def register_errors(app):
    """Every error answers with the one JSON shape."""
    from webapp import errors

    errors.init_app(app)


def register_blueprints(app):
    """One blueprint per resource."""
    from webapp.api import AnyTextConverter, events, items, ops, writes

    app.url_map.converters["anytext"] = AnyTextConverter

    for module in (items, events, writes, ops):
        app.register_blueprint(module.bp)


def register_middleware(app, settings):
    """WSGI layers around the app, innermost first: fast path, admission control, observation."""
    from webapp.admission import AdmissionControl
    from webapp.fastpath import ItemFastPath
    from webapp.observe import Observe

    app.wsgi_app = ItemFastPath(app.wsgi_app, app.extensions["spillway"])
    app.wsgi_app = AdmissionControl(app.wsgi_app, settings.web_max_active)
    app.wsgi_app = Observe(app.wsgi_app, log_requests=settings.request_log)
