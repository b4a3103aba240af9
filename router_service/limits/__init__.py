"""Budgets and rate limits that hold across replicas (README "Budgets and limits").

- `periods`: calendar (IANA time zone) and rolling windows, pure.
- `model`, `plan`, `cost`: what is limited, what a request reserves and what the counts decide, pure.
- `store`: the counter store interface and its in-process implementation; `redis_store`: the
  same semantics in Redis, one Lua script per operation.
- `governor`: `admit(identity, estimate) -> Admission`, `settle`, `release`: what the request
  path calls. `errors` and `rpc_details`: RESOURCE_EXHAUSTED with QuotaFailure and RetryInfo.
- `schema`: the `limits:` config section.
"""
