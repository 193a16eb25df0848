"""Getting every message out: the audience, the durable outbox, the per-channel dispatch loops with
their pacing (shared across workers), circuit breaker and reports; subscribers, staff alerts,
requeue and what capture mode kept."""
