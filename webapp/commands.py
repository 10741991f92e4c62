"""Operators' commands on the running stack's storage: `spillway <command>` (deploy/cli.py) and
`flask --app webapp <command>` run these same ones.

init-db and migrate need only MySQL, so they build no app; the others run in the
app's context (its storage). `spillway` may add settings of its own (make run's
private servers) in the click context's meta under OVERRIDES.
"""
import json
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from webapp.api.request import storage
from webapp.clock import parse_rfc3339
from webapp.config import ConfigError, Settings, load_settings
from webapp.storage.sql.deadletters import Filter
from webapp.storage.startup import apply_schema

OVERRIDES = "spillway.settings_overrides"
dead_letters = AppGroup("dead-letters", help="Records MySQL rejected: list, show, redrive, purge.")


def init_app(app: Flask) -> None:
    """Register the commands on app.cli."""
    app.cli.add_command(init_db_command)
    app.cli.add_command(migrate_command)
    app.cli.add_command(warm_cache_command)
    app.cli.add_command(dead_letters)


def command_settings(*required: str) -> Settings:
    """The settings, with what the caller added under OVERRIDES; a missing or malformed one ends the command
    with one line naming it and exit status 2."""
    ctx = click.get_current_context()
    try:
        return load_settings(ctx.meta.get(OVERRIDES)).require(*required)
    except ConfigError as err:
        click.echo(f"spillway: {err}", err=True)
        ctx.exit(2)


@click.command("init-db")
def init_db_command() -> None:
    """Create the tables, or bring them up to date (the same as migrate; safe to run again)."""
    apply_schema(command_settings("mysql_url"))
    click.echo("Schema applied.")


@click.command("migrate")
@click.option("--dry-run", is_flag=True, help="only list the migrations not applied yet")
def migrate_command(dry_run: bool) -> None:
    """Apply the schema migrations not applied yet (webapp/storage/migrations), each once, under a lock."""
    from webapp.storage.migrate import pending  # yoyo: not for every web worker that registers the commands

    settings = command_settings("mysql_url")
    todo = pending(settings) if dry_run else apply_schema(settings)
    for migration in todo:
        click.echo(f"{'would apply' if dry_run else 'applied'} {migration}")
    if not todo:
        click.echo("The schema is up to date.")


@click.command("warm-cache")
@click.option("--prefix", default="", help="only keys starting with this")
@with_appcontext
def warm_cache_command(prefix: str) -> None:
    """Load every persisted item (or those with --prefix) from MySQL into the cache."""
    click.echo(f"Cached {storage().cache.warm_all(prefix)} items.")


def _time(value: str | None) -> int | None:
    try:
        return None if value is None else parse_rfc3339(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


def filters(fn: Any) -> Any:
    """The options that choose dead letters."""
    for option in reversed([
        click.option("--id", "ids", type=int, multiple=True, help="a dead letter's id (repeatable)"),
        click.option("--write-id", help="the write the records belonged to"),
        click.option("--kind", type=click.Choice(["items", "events"])),
        click.option("--reason", help="text the reason contains"),
        click.option("--since", help="failed at or after (RFC 3339)"),
        click.option("--until", help="failed before (RFC 3339)"),
    ]):
        fn = option(fn)
    return fn


def _filter(ids: tuple[int, ...], write_id: str | None, kind: str | None, reason: str | None,
            since: str | None, until: str | None) -> Filter:
    return Filter(tuple(ids), write_id, kind, reason, _time(since), _time(until))


@dead_letters.command("list")
@filters
@click.option("--limit", default=50, show_default=True)
@click.option("--unreadable", is_flag=True, help="queue entries the drain could not read, instead")
def list_command(ids: tuple[int, ...], write_id: str | None, kind: str | None, reason: str | None,
                 since: str | None, until: str | None, limit: int, unreadable: bool) -> None:
    """Dead letters (or unreadable queue entries), oldest first, one per line."""
    store = storage().dead_letters
    if unreadable:
        for entry in store.unreadable(limit=limit):
            click.echo(f"{entry['id']}  write {entry['write_id']}  {entry['reason']}")
        return
    for letter in store.find(_filter(ids, write_id, kind, reason, since, until), limit=limit):
        click.echo(f"{letter.id}  {letter.kind}  write {letter.write_id}  version {letter.version}  {letter.reason}")


@dead_letters.command("show")
@click.argument("dead_letter_id", type=int)
def show_command(dead_letter_id: int) -> None:
    """One dead letter, whole, as JSON."""
    letter = storage().dead_letters.get(dead_letter_id)
    if letter is None:
        raise click.ClickException(f"no dead letter has id {dead_letter_id}")
    click.echo(json.dumps(letter.as_dict(), indent=2, ensure_ascii=False))


@dead_letters.command("redrive")
@filters
@click.option("--all", "everything", is_flag=True, help="every dead letter (no filter)")
@click.option("--dry-run", is_flag=True, help="only count them")
def redrive_command(ids: tuple[int, ...], write_id: str | None, kind: str | None, reason: str | None,
                    since: str | None, until: str | None, everything: bool, dry_run: bool) -> None:
    """Send dead letters back through the queue, each with its original version (a newer write still wins)."""
    chosen = _filter(ids, write_id, kind, reason, since, until)
    if chosen.is_empty() and not everything:
        raise click.UsageError("choose dead letters (--id, --write-id, --kind, ...) or pass --all")
    store = storage().dead_letters
    if dry_run:
        click.echo(f"{store.count(chosen)} dead letters would be redriven.")
        return
    click.echo(f"Redrove {store.redrive(chosen)} dead letters; the drain writes them now.")


@dead_letters.command("purge")
@filters
@click.option("--all", "everything", is_flag=True, help="every dead letter (no filter)")
@click.option("--unreadable", is_flag=True, help="purge unreadable queue entries instead (by --entry, or --all)")
@click.option("--entry", "entries", multiple=True, help="an unreadable entry's id (repeatable)")
def purge_command(ids: tuple[int, ...], write_id: str | None, kind: str | None, reason: str | None,
                  since: str | None, until: str | None, everything: bool, unreadable: bool,
                  entries: tuple[str, ...]) -> None:
    """Delete dead letters (or unreadable queue entries) for good."""
    store = storage().dead_letters
    if unreadable:
        if not entries and not everything:
            raise click.UsageError("choose entries with --entry, or pass --all")
        click.echo(f"Purged {store.purge_unreadable(list(entries) or None)} unreadable entries.")
        return
    chosen = _filter(ids, write_id, kind, reason, since, until)
    if chosen.is_empty() and not everything:
        raise click.UsageError("choose dead letters (--id, --write-id, --kind, ...) or pass --all")
    click.echo(f"Purged {store.purge(chosen)} dead letters.")
