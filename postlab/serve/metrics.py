"""Prometheus metrics of the server, all under the ``postlab:`` prefix (vLLM names its ``vllm:``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class ServeMetrics:
    """One registry per server (not the process-global one), so tests can run several apps."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.running = Gauge("postlab:num_requests_running", "Requests being decoded.", registry=r)
        self.waiting = Gauge("postlab:num_requests_waiting", "Requests queued for the next batch.", registry=r)
        self.time_to_first_token = Histogram("postlab:time_to_first_token_seconds",
                                             "From arrival to the first generated token.", buckets=LATENCY_BUCKETS, registry=r)
        self.latency = Histogram("postlab:e2e_request_latency_seconds", "From arrival to the last token.",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.prompt_tokens = Counter("postlab:prompt_tokens", "Prompt tokens of finished requests.", registry=r)
        self.generation_tokens = Counter("postlab:generation_tokens", "Tokens generated for finished requests.", registry=r)
        self.requests = Counter("postlab:requests", "Finished requests by finish reason.", ["finish_reason"], registry=r)
        self.abandoned = Counter("postlab:requests_abandoned",
                                 "Requests whose client went away before the answer was complete.", registry=r)
        self.errors = Counter("postlab:request_errors", "Requests answered with an error, by HTTP status.", ["status"],
                              registry=r)
        self.batch_size = Histogram("postlab:batch_size", "Requests decoded together per decode step (continuous) or engine call (dynamic).",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.monitor_checks = Counter("postlab:monitor_checks", "Answers a spec rule's check was applied to.",
                                      ["rule", "check"], registry=r)
        self.monitor_flags = Counter("postlab:monitor_flags", "Answers that failed a spec rule's check.",
                                     ["rule", "check"], registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
