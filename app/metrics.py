"""Prometheus metrics of one app instance (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.latency = Histogram("hybridgan_request_seconds", "request latency by route", ["route"], registry=r,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.images = Counter("hybridgan_images_generated_total", "images generated", registry=r)
        self.batches = Counter("hybridgan_generator_batches_total", "generator passes (merged requests)", registry=r)
        self.model_info = Gauge("hybridgan_model_info", "the model being served (value 1)", ["version"], registry=r)
        self.reloads = Counter("hybridgan_model_reloads_total", "models hot-loaded", registry=r)
        self.reload_failures = Counter("hybridgan_model_reload_failures_total",
                                       "published models refused (missing, corrupt, wrong shape, non-finite)",
                                       registry=r)
        self.rejected = Counter("hybridgan_overload_rejections_total", "requests refused with 503 (queue full)",
                                registry=r)
