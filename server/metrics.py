"""Prometheus metrics, one registry per app so tests can build many apps in a process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_WAIT_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sockets = Gauge("loket_sockets", "Open websockets", ["role"], registry=r)
        self.queue_length = Gauge("loket_queue_length", "Booths waiting", registry=r)
        self.sessions = Gauge("loket_sessions", "Live booth-CSO sessions", registry=r)
        self.wait_seconds = Histogram(
            "loket_wait_seconds", "Check-in to assignment", buckets=_WAIT_BUCKETS, registry=r
        )
        self.assignments = Counter("loket_assignments", "Booths assigned to a CSO", registry=r)
        self.requeues = Counter("loket_requeues", "Booths sent back to the queue", registry=r)
        self.relay_latency = Histogram(
            "loket_relay_latency_seconds",
            "Signaling relay: message received to forwarded on the wire",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.messages = Counter("loket_messages", "Messages received", ["role", "type"], registry=r)
        self.protocol_errors = Counter(
            "loket_protocol_errors", "Typed errors sent", ["code"], registry=r
        )
        self.captures_undeliverable = Counter(
            "loket_captures_undeliverable",
            "Captures a kiosk gave up on and reported (the officer must ask again): alert",
            ["reason"],
            registry=r,
        )
        # The floor's own health: alert on any increase of the counters below.
        self.floor_quarantined = Counter(
            "loket_floor_events_quarantined",
            "Events the floor core failed on, set aside so the floor goes on (a bug: alert)",
            registry=r,
        )
        self.floor_format_refused = Counter(
            "loket_floor_format_refused",
            "Snapshots or events in a format this version does not read (upgrade order)",
            registry=r,
        )
        self.floor_outbox_pending = Gauge(
            "loket_floor_outbox_pending", "Audit entries decided, not yet written", registry=r
        )
        self.floor_outbox_set_aside = Counter(
            "loket_floor_outbox_set_aside",
            "Audit entries the database refused for good, set aside (alert)",
            registry=r,
        )
        self.floor_gateway_resets = Counter(
            "loket_floor_gateway_resets",
            "Times this process could not hand its sockets' events to the floor and reset them",
            registry=r,
        )
