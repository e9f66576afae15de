"""Celery workers: thin task wrappers that call model.train(...) with progress and cancel hooks."""
