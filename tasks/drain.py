"""The write-behind drain: Celery tasks that move queued writes into MySQL in batches."""
