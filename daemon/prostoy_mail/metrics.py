"""Counters for Prometheus (prometheus-client), one registry per daemon (no globals).

Served on the optional loopback listener `[listen] metrics = "127.0.0.1:9925"`. Labels are
bounded sets: an organisation's slug (as many as the installation has), a kind, a step, an
outcome; never an address, a rule's name or a message (a hosting installation's thousands of
gateways and rules would make every scrape huge, and name customers' mailboxes to whoever
reads the metrics).
"""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connections = Counter("prostoy_mail_smtp_connections", "SMTP connections accepted",
                                   ["listener"], registry=self.registry)
        self.connections_refused = Counter("prostoy_mail_smtp_connections_refused",
                                           "SMTP connections refused at connect", ["reason"], registry=self.registry)
        self.sessions = Gauge("prostoy_mail_smtp_sessions", "SMTP sessions open now", registry=self.registry)
        self.accepted = Counter("prostoy_mail_messages_accepted", "Messages stored and routed, by organisation "
                                "and way in (smtp, gateway)", ["organisation", "via"], registry=self.registry)
        self.rejected = Counter("prostoy_mail_messages_rejected", "Recipients or messages refused, by reason",
                                ["reason"], registry=self.registry)
        self.routed = Counter("prostoy_mail_messages_routed", "Messages routed, by organisation and how (rule, "
                              "reply, conversation, fallback, ignored, declined)", ["organisation", "by"],
                              registry=self.registry)
        self.store_batches = Counter("prostoy_mail_store_commits", "Store transactions committed (group commits)",
                                     registry=self.registry)
        self.gateways = Gauge("prostoy_mail_gateways", "Gateways fetching, by state (connected, waiting)",
                              ["state"], registry=self.registry)
        self.fetch_errors = Counter("prostoy_mail_fetch_errors", "Fetching failures, by organisation and step",
                                    ["organisation", "step"], registry=self.registry)
        self.fetched = Counter("prostoy_mail_fetched_messages", "Messages fetched and stored, by organisation",
                               ["organisation"], registry=self.registry)
        self.fetch_seconds = Histogram("prostoy_mail_fetch_batch_seconds", "Time to store a batch of fetched messages",
                                       buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                                       registry=self.registry)
        self.outbound = Counter("prostoy_mail_outbound_recipients", "Outbound delivery answers per recipient, by "
                                "organisation and outcome (delivered, pending = deferred, failed)",
                                ["organisation", "outcome"], registry=self.registry)
        self.webhooks = Counter("prostoy_mail_webhook_deliveries", "Webhook POSTs, by organisation and outcome "
                                "(delivered, failed)", ["organisation", "outcome"], registry=self.registry)
        self.webhooks_failing = Gauge("prostoy_mail_webhooks_failing", "Webhooks that have failed for [api] "
                                      "webhook_failing_after seconds", registry=self.registry)
        self.logins = Counter("prostoy_mail_logins", "Password logins, by protocol and outcome",
                              ["protocol", "outcome"], registry=self.registry)
        self.spool = Gauge("prostoy_mail_spool_messages", "Outbound messages waiting", registry=self.registry)
        self.config_generation = Gauge("prostoy_mail_config_generation", "The configuration in effect: 1 at start, "
                                       "one more with every reload applied", registry=self.registry)

    def count_rejected(self, reason: str) -> None:
        self.rejected.labels(reason).inc()


def serve_metrics(host: str, port: int, metrics: Metrics) -> WSGIServer:
    """prometheus-client's HTTP server (a thread of its own) for `metrics`; shut it down when done."""
    server, _thread = start_http_server(port, host, registry=metrics.registry)
    return server
