"""What the API and the workers must agree on about the job queue: the task name, the queue, and the
broker settings. Imported by app/ (to send tasks by name) and worker/ (to run them); it imports
neither, nor Celery task code.

Brokers:
  redis://host:6379/0   deployment: many workers on many hosts
  filesystem://         the embedded default: a folder in the run store, nothing else to install; for
                        one machine (the API and its worker share the folder)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

TRAIN_TASK = "hybridgan.train"
RECOVER_TASK = "hybridgan.recover"
DEFAULT_QUEUE = "training"
# Longer than any training job: Redis re-delivers an unacknowledged task after this long, and its
# default of one hour would hand a long job to a second worker while the first still runs it.
VISIBILITY_TIMEOUT_S = 7 * 24 * 3600


def broker_url() -> str:
    return os.environ.get("HYBRIDGAN_BROKER_URL", "filesystem://")


def queue_name() -> str:
    return os.environ.get("HYBRIDGAN_QUEUE", DEFAULT_QUEUE)


def celery_config(home: str | os.PathLike, url: str | None = None) -> dict[str, Any]:
    url = url or broker_url()
    conf: dict[str, Any] = {
        "broker_url": url,
        "broker_connection_retry_on_startup": True,
        "task_default_queue": queue_name(),
        "task_routes": {TRAIN_TASK: {"queue": queue_name()}, RECOVER_TASK: {"queue": queue_name()}},
        "task_serializer": "json", "accept_content": ["json"],
        "task_ignore_result": True,  # the durable record is the run directory, not a result backend
        "task_acks_late": True,  # a task is acknowledged when it finishes, not when it starts
        "task_reject_on_worker_lost": True,  # ... and re-queued when its worker process dies
        "worker_prefetch_multiplier": 1,  # a worker holds one long job, never a backlog
        "worker_max_tasks_per_child": 1,  # a fresh process per job: no CUDA state or memory carried over
        "worker_hijack_root_logger": False,
    }
    if url.startswith("filesystem://"):
        folder = Path(home) / "broker"
        conf["broker_transport_options"] = {"data_folder_in": str(folder / "queue"),
                                            "data_folder_out": str(folder / "queue"),
                                            "processed_folder": str(folder / "processed"),
                                            # exchange tables; kombu's default is ./control in the cwd
                                            "control_folder": str(folder / "control"),
                                            "store_processed": False}
    else:
        conf["broker_transport_options"] = {"visibility_timeout": VISIBILITY_TIMEOUT_S}
        conf["broker_connection_timeout"] = 3
    # Sending fails fast while the broker is down, so the API can answer 503 instead of hanging.
    conf["task_publish_retry_policy"] = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.2}
    return conf


def ensure_broker_dirs(home: str | os.PathLike, url: str | None = None) -> None:
    """The filesystem broker's folders must exist before either side connects."""
    if (url or broker_url()).startswith("filesystem://"):
        for sub in ("queue", "processed", "control"):
            (Path(home) / "broker" / sub).mkdir(parents=True, exist_ok=True)
