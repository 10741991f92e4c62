"""`spillway`: the command of an installed Spillway (`pip install .`): the programs and the operators' tools.

    spillway web | worker | flower        gunicorn, a Celery drain worker, Celery Flower
    spillway init-db | migrate            the schema (webapp/storage/migrations)
    spillway status                       the queue, the drain, dead letters (as `make status`)
    spillway dead-letters list|show|redrive|purge, spillway warm-cache

Every command reads the settings every process reads (webapp/config.py: .env,
the environment, NAME_FILE for secrets). web, worker and flower become gunicorn
or Celery (exec: the same pid, so the signals of systemd or supervisord reach
them) with the settings files the package ships: webapp/server/gunicorn_conf.py,
webapp/celeryconfig.py and deploy/flowerconfig.py. Arguments after `--` are
passed on to gunicorn or Celery. The tools (init-db, migrate, status,
dead-letters, warm-cache) are webapp/commands.py's, the ones `flask --app webapp`
runs; in a checkout where `make run` started its private servers, they reach
those when MYSQL_URL / REDIS_URL are unset.
"""
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

import click

import webapp
from webapp import commands
from webapp.config import ConfigError, Settings, load_settings

GUNICORN_CONF = Path(webapp.__file__).parent / "server" / "gunicorn_conf.py"
FLOWER_CONF = Path(__file__).parent / "flowerconfig.py"
PASS_ON = {"ignore_unknown_options": True, "help_option_names": ["-h", "--help"]}
APP_TOOLS = ("dead-letters", "warm-cache")  # these run in the Flask app's context


def _version() -> str:
    try:
        return metadata.version("spillway")
    except metadata.PackageNotFoundError:  # run from a checkout without installing
        return "unknown"


def _settings(*required: str) -> Settings:
    """The settings, or one line naming what is wrong and exit status 2."""
    try:
        return load_settings().require(*required)
    except ConfigError as err:
        click.echo(f"spillway: {err}", err=True)
        sys.exit(2)


def _become(argv: list[str], env: dict[str, str] | None = None) -> NoReturn:
    """Replace this process with `python -m <argv>` (same pid: a supervisor's signals reach it)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", *argv], os.environ if env is None else env)


def private_servers(settings: Settings) -> dict[str, Any]:
    """Settings for the URLs left unset: those of the private servers `make run` started in VAR_DIR, if any."""
    from deploy.status import server_urls  # deploy.bootstrap: only for the tools

    if settings.mysql_url and (settings.redis_url or settings.redis_sentinels):
        return {}
    urls = server_urls(settings)
    if urls is None:
        return {}
    found = {"mysql_url": urls[0]} if not settings.mysql_url else {}
    if not settings.redis_url and not settings.redis_sentinels:
        found["redis_url"] = urls[1]
    return found


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), prog_name="spillway")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Spillway: an HTTP JSON API that takes bursts of writes without timeouts or lost data.

    Settings come from the environment, .env (the checkout's, or the current directory's
    when installed) and NAME_FILE for secrets (docs/configuration.md).
    """
    if ctx.invoked_subcommand in ("init-db", "migrate", *APP_TOOLS):
        ctx.meta[commands.OVERRIDES] = overrides = private_servers(_settings())
    if ctx.invoked_subcommand in APP_TOOLS:
        from flask.cli import ScriptInfo

        from webapp import create_app

        ctx.obj = ScriptInfo(create_app=lambda: create_app(overrides), set_debug_flag=False)


@cli.command(context_settings=PASS_ON)
@click.argument("gunicorn_args", nargs=-1, type=click.UNPROCESSED)
def web(gunicorn_args: tuple[str, ...]) -> None:
    """The web server: gunicorn with gevent workers on BIND_HOST:PORT."""
    _settings("mysql_url", "redis_url", "api_keys")
    _become(["gunicorn", "-c", str(GUNICORN_CONF), *gunicorn_args, "webapp:create_app()"])


@cli.command(context_settings=PASS_ON)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """A Celery worker running the drain (WORKER_CONCURRENCY processes); as many hosts as you like."""
    settings = _settings("mysql_url", "redis_url")
    _become(["celery", "-A", "tasks", "worker", f"--loglevel={settings.log_level}",
             f"--concurrency={settings.worker_process_count}", "-n", "spillway@%h", "--without-mingle",
             "--without-gossip", *celery_args])


@cli.command(context_settings=PASS_ON)
@click.argument("flower_args", nargs=-1, type=click.UNPROCESSED)
def flower(flower_args: tuple[str, ...]) -> None:
    """Celery Flower on 127.0.0.1:FLOWER_PORT, with basic auth from FLOWER_BASIC_AUTH."""
    from deploy.bootstrap import flower_environment

    settings = _settings("redis_url", "flower_basic_auth")
    env = flower_environment(dict(os.environ), settings)
    _become(["celery", "-A", "tasks", "flower", f"--conf={FLOWER_CONF}", *flower_args], env)


@cli.command()
@click.option("--window", type=float, default=2.0, show_default=True,
              help="seconds over which the drain rate and the lag are measured")
def status(window: float) -> None:
    """The write queue, the drain, dead letters and the processes at a glance (exit 1 if a server is unreadable)."""
    from deploy import status as report

    sys.exit(report.main(["status", "--window", str(window)]))


cli.add_command(commands.init_db_command)
cli.add_command(commands.migrate_command)
cli.add_command(commands.dead_letters)
cli.add_command(commands.warm_cache_command)


def main() -> None:
    """The console script `spillway`."""
    cli(prog_name="spillway")


if __name__ == "__main__":
    main()
