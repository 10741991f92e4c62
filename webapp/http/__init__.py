"""HTTP vocabulary without Flask: limits, the one schema per body, the error mapping, the write path.

Both doors of the API use it: the WSGI layers below Flask (webapp/server) and
the Flask views (webapp/api). Nothing here imports Flask, Werkzeug or gevent,
and storage never imports this package (the import contracts in pyproject.toml).
"""
