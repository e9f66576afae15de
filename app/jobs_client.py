"""Sends training tasks to the Celery workers by name; never imports worker code."""

from __future__ import annotations

from pathlib import Path

from celery import Celery

from hybridgan.queue import TRAIN_TASK, celery_config, ensure_broker_dirs


class BrokerUnavailable(RuntimeError):
    pass


class JobQueue:
    def __init__(self, home: Path, broker_url: str):
        self.home, self.broker_url = home, broker_url
        self._celery: Celery | None = None

    def _app(self) -> Celery:
        if self._celery is None:
            ensure_broker_dirs(self.home, self.broker_url)
            self._celery = Celery("hybridgan-api")
            self._celery.conf.update(celery_config(self.home, self.broker_url))
        return self._celery

    def send(self, job_id: str) -> None:
        """Queue a job; raises BrokerUnavailable quickly when the broker cannot take it."""
        try:
            self._app().send_task(TRAIN_TASK, args=[job_id], retry=True)
        except Exception as e:  # kombu raises OperationalError and friends when the broker is down
            raise BrokerUnavailable(f"the job queue ({self.broker_url.split('@')[-1]}) is not reachable: "
                                    f"{type(e).__name__}") from None
