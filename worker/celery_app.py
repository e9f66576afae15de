"""The Celery app of the training workers. Start one with `hybridgan worker` (one per GPU).

Configured for long GPU jobs (hybridgan/queue.py): late acks with reject-on-worker-lost, prefetch 1,
a fresh process per job, a Redis visibility timeout longer than any job.
"""

from __future__ import annotations

from celery import Celery

from hybridgan.queue import celery_config
from model.store import default_home

app = Celery("hybridgan", include=["worker.tasks"])
app.conf.update(celery_config(default_home()))
