"""The key store `auth` config names: Redis when `redis_url` is set, else the key file, else
none (client certificates only)."""

from __future__ import annotations

from pathlib import Path

from router_service.config_schema import AuthConfig
from router_service.keystore.base import KeyStore, MemoryKeyStore
from router_service.keystore.file_store import FileKeyStore


def build_key_store(auth: AuthConfig) -> KeyStore:
    url = auth.redis_url.get_secret_value()
    if url:
        # Imported only when Redis is configured (router_service/redis_client.py says why).
        from router_service.keystore.redis_store import RedisKeyStore
        from router_service.redis_client import redis_from_url

        return RedisKeyStore(redis_from_url(url), prefix=auth.redis_prefix, cache_ttl_s=auth.key_cache_ttl_s)
    if auth.keys_file:
        return FileKeyStore(Path(auth.keys_file), poll_s=auth.keys_file_poll_s)
    return MemoryKeyStore()  # client certificates only
