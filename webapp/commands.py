"""`flask --app webapp <command>`: operators' commands on the running stack's storage."""
import click
from flask import Flask
from flask.cli import with_appcontext

from webapp.api.request import storage
from webapp.storage.startup import apply_schema


def init_app(app: Flask) -> None:
    """Register the commands on app.cli."""
    app.cli.add_command(init_db_command)
    app.cli.add_command(warm_cache_command)


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Create the tables (safe to run again)."""
    apply_schema(storage().settings)
    click.echo("Schema applied.")


@click.command("warm-cache")
@click.option("--prefix", default="", help="only keys starting with this")
@with_appcontext
def warm_cache_command(prefix: str) -> None:
    """Load every persisted item (or those with --prefix) from MySQL into the cache."""
    click.echo(f"Cached {storage().cache.warm_all(prefix)} items.")
