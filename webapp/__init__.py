"""Spillway's web application: create_app() builds it inside each gunicorn worker.

Everything is imported inside the factory: the drain imports webapp.storage,
which runs this file first, and a Celery worker must not load Flask or gevent.
"""
from typing import Any

from webapp.config import Settings, load_settings


def create_app(overrides: dict[str, Any] | None = None) -> Any:
    """The Flask app: settings, storage (made on first use), errors, blueprints, commands, WSGI layers."""
    from flask import Flask

    from webapp import logs

    settings = load_settings(overrides).require("mysql_url", "redis_url", "api_keys")
    logs.setup(settings.log_level, "web")
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        SPILLWAY_READS_REQUIRE_KEY=settings.reads_require_key,
    )
    register_storage(app, settings)
    register_auth(app, settings)
    register_errors(app)
    register_blueprints(app)
    register_commands(app)
    register_server_layers(app, settings)
    return app


def register_storage(app: Any, settings: Settings) -> None:
    """This process's storage; under gevent with the coalescing Redis client and a time box."""
    from webapp.api.request import EXTENSION
    from webapp.server.coalesce import CoalescingRedis
    from webapp.server.failover import follow
    from webapp.server.timebox import gevent_active, timebox
    from webapp.storage.services import Services

    if gevent_active():
        services = Services(settings, "web", redis_class=CoalescingRedis, timebox=timebox)
        app.extensions[EXTENSION] = services
        follow(services.failover)  # a failover is followed at once, not after the old primary fails
    else:  # the Flask CLI, a test client
        app.extensions[EXTENSION] = Services(settings, "web")


def register_auth(app: Any, settings: Settings) -> None:
    """The bearer keys from API_KEYS."""
    from webapp.api import auth

    auth.init_app(app, settings.api_key_list)


def register_errors(app: Any) -> None:
    """Every error answers with the one JSON shape."""
    from webapp.api import responses

    responses.init_app(app)


def register_blueprints(app: Any) -> None:
    """One blueprint per resource."""
    from webapp.api import deadletters, events, items, ops, writes
    from webapp.api.request import AnyTextConverter

    app.url_map.converters["anytext"] = AnyTextConverter
    for module in (items, events, writes, deadletters, ops):
        app.register_blueprint(module.bp)


def register_commands(app: Any) -> None:
    """`flask --app webapp ...` commands (the ones `spillway` runs too)."""
    from webapp import commands

    commands.init_app(app)


def register_server_layers(app: Any, settings: Settings) -> None:
    """WSGI layers around the app, innermost first: fast paths, admission control, the body, observation.

    The body is read in full before admission control, so a slow upload holds no slot.
    """
    from webapp.api.request import key_ring, storage
    from webapp.server.admission import AdmissionControl
    from webapp.server.body import BodyReader
    from webapp.server.fastpath import ItemFastPath
    from webapp.server.observe import Observe
    from webapp.server.writes import WriteFastPath

    with app.app_context():
        cache, queue, keys = storage().cache, storage().queue, key_ring()
    app.wsgi_app = ItemFastPath(app.wsgi_app, cache, enabled=not settings.reads_require_key)
    app.wsgi_app = WriteFastPath(app.wsgi_app, queue, keys)
    app.wsgi_app = AdmissionControl(app.wsgi_app, settings.web_max_active)
    app.wsgi_app = BodyReader(app.wsgi_app, settings.max_body_bytes, settings.body_read_timeout)
    app.wsgi_app = Observe(app.wsgi_app, log_requests=settings.request_log)
