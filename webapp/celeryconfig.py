"""Celery settings, read from the same environment as the app (webapp/config.py).

The Celery app of the drain (tasks/celery.py) and the one the API publishes redrives
with (webapp/api/jobs.py) both load this module by name; the checkout's top-level
celeryconfig.py is the same settings for a `celery` pointed at it by hand.
"""

from webapp.config import load_settings, redis_userinfo

_settings = load_settings().require("redis_url")
_broker = _settings.broker

# --- Broker ---------------------------------------------------------------------
# Drain tasks travel through CELERY_BROKER_URL: a small Redis of its own (`make run`
# starts one), not the write queue's. A Redis that the queue filled refuses kombu's
# writes (the unacked set, the queue bindings), and a broker there could deliver no
# drain task, just when one is needed to empty it (docs/architecture.md). Unset, it
# is REDIS_URL's server, as before. The queued writes themselves are NOT Celery
# messages: they sit in a Redis Stream and are only acknowledged there after MySQL
# committed them (tasks/drain.py), so no Celery setting below can lose a write.
broker_url = _broker.url
broker_connection_retry_on_startup = True
# A broker error on a channel (a failover, a "not now" reply) reconnects instead of
# stopping the worker.
broker_channel_error_retry = True
task_default_queue = "spillway"
task_serializer = "json"
accept_content = ["json"]

# --- Acknowledgement and redelivery ----------------------------------------------
# A drain task's message is acknowledged after the task ran, and put back if its
# worker process died (SIGKILL) so the slot is picked up again at once.
task_acks_late = True
task_reject_on_worker_lost = True
# A broker blip must not kill the drains: a running drain task holds no broker state that a reconnect
# would lose (its slot lease and the entries it reads are in the write queue's Redis).
worker_cancel_long_running_tasks_on_connection_loss = False
# One message at a time per process: a drain task runs for seconds, and a
# prefetched one would wait behind it while its slot lease runs out.
worker_prefetch_multiplier = 1
# Seconds before Redis gives an unacknowledged message to another worker: longer than a drain task may
# run (its time limit, tasks/drain.py: about 6 minutes), so no message of a running task is handed out
# twice. A redelivered task with a stale slot token exits at once.
broker_transport_options: dict[str, object] = {"visibility_timeout": 3600, "socket_timeout": 5,
                                               "socket_connect_timeout": 2, "health_check_interval": 5}
if _broker.is_sentinel:
    # With Sentinel, kombu finds the primary through any of them and follows a failover. The
    # URL's password is the data nodes'; the Sentinels' own goes in sentinel_kwargs.
    _auth = redis_userinfo(_broker.password)
    broker_url = ";".join(f"sentinel://{_auth}{host}:{port}/{_broker.db}" for host, port in _broker.sentinels)
    broker_transport_options.update(master_name=_broker.service, sentinel_kwargs={
        "password": _broker.sentinel_password or None, "socket_timeout": 0.5, "socket_connect_timeout": 0.5})
# Publishing a drain task rides out a short election instead of failing after 0.6 s.
task_publish_retry_policy = {"max_retries": 10, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2}

# --- Time limits ----------------------------------------------------------------
# Other tasks get these; the drain task sets its own (tasks/drain.py), since it
# may keep draining while Redis is too full to take its successor.
task_soft_time_limit = int(_settings.drain_task_seconds + _settings.db_write_timeout + 30)
task_time_limit = task_soft_time_limit + 30

# --- Results and events (Flower) ------------------------------------------------
# No result backend: each drain task's result (rows written, lag) reaches
# Flower in its task-succeeded event.
task_ignore_result = True
worker_send_task_events = True
task_send_sent_event = True
