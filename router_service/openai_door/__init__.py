"""The OpenAI-compatible HTTP door beside gRPC: the same engine, keys, rules and events (server.py)."""
