"""gunicorn settings for Spillway's web server: webapp/server/gunicorn_conf.py, run from here.

Run: gunicorn -c gunicorn.conf.py "webapp:create_app()"   (installed: `spillway web`)

The settings live in the package, so that an installed `spillway web` has them
too; this file keeps the checkout's layout. runpy runs that file afresh each
time gunicorn reads this one (at start and on every reload), as an import would not.
"""
import runpy
from pathlib import Path

globals().update(runpy.run_path(str(Path(__file__).parent / "webapp" / "server" / "gunicorn_conf.py")))
