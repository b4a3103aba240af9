"""Resilience decisions: live per-deployment state (latency, errors, cooldown and circuit breaking),
the per-error-class policy, retries with backoff and a budget. Pure: time and randomness are
passed in; standard library only.
"""
