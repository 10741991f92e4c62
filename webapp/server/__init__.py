"""Below Flask, only in gunicorn's gevent workers: observation, admission, the fast path, the coalescer.

Imports run one way: server -> api -> storage -> kernel.
"""
