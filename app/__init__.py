"""The FastAPI service: settings, model registry (hot-load), request batching, routes, pages.

Imports model/ (never worker/); training jobs are sent to Celery by task name."""
