"""The Flask side: thin blueprints (items, events, writes, ops), what comes in (request.py,
schemas.py, auth.py) and what goes out (responses.py: the one error shape).

Imports run one way: api -> storage -> kernel; nothing here imports webapp.server.
"""
