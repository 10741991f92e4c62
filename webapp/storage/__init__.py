"""Storage: what the web and the drain share (Redis queue, cache, MySQL), with no Flask and no gevent.

Start at services.py (one process's connections), records.py (the one shape of a
write) and keys.py (every Redis key). Storage raises webapp.storage.errors only.
"""
