"""`routerctl keys`: operators manage virtual keys in the store the routers read.

  routerctl keys create --keys-file F | --redis URL [--redis-prefix P] [--id ID]
                        [--team T] [--customer C] [--user U] [--scope S ...]
                        [--model M ...] [--alias A ...] [--policy P ...]
                        [--default-policy P] [--expires-days N]
  routerctl keys list   --keys-file F | --redis URL
  routerctl keys rotate ID [--grace-s S] ...       a new secret; the old one works S more seconds
  routerctl keys disable ID ... / enable ID ...

The secret is printed once, on stdout, and never stored: only its salted hash reaches the store.
Access to the store is the admin right (the key file's permissions, or the Redis credentials).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import sys
import time
from pathlib import Path

from router_service.identity.model import DEFAULT_SCOPES, Identity, Scope
from router_service.identity.records import KeyRecord
from router_service.keystore.admin import KeyAdminError, create_key, rotate_key, set_enabled
from router_service.keystore.base import KeyStore
from router_service.keystore.file_store import FileKeyStore, KeyFileError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="manage virtual keys (writes the key file or Redis directly)")
    actions = keys.add_subparsers(dest="action", required=True)
    for name in ("create", "list", "rotate", "disable", "enable"):
        p = actions.add_parser(name)
        where = p.add_mutually_exclusive_group()
        where.add_argument("--keys-file", default=os.environ.get("ROUTER_KEYS_FILE", ""))
        where.add_argument("--redis", default=os.environ.get("ROUTER_KEYS_REDIS", ""), help="redis:// URL")
        p.add_argument(
            "--redis-prefix",
            default=os.environ.get("ROUTER_KEYS_REDIS_PREFIX", "llmrouter:"),
            help="the routers' auth.redis_prefix (%(default)s)",
        )
        if name in ("rotate", "disable", "enable"):
            p.add_argument("key_id")
        if name == "rotate":
            p.add_argument(
                "--grace-s", type=float, default=86_400.0, help="old secret's validity (%(default)s)"
            )
        if name == "create":
            p.add_argument("--id", default="", help="key id (default: generated k_...)")
            for field in ("team", "customer", "user", "default-policy"):
                p.add_argument(f"--{field}", default="")
            for field in ("scope", "model", "alias", "policy"):
                p.add_argument(f"--{field}", action="append", default=[])
            p.add_argument("--expires-days", type=float, default=None)


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except (KeyAdminError, KeyFileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


async def _run(args: argparse.Namespace) -> int:
    store = _store(args)
    await store.start()
    try:
        if args.action == "create":
            record, secret = await create_key(
                store,
                Identity(
                    key_id=args.id,
                    team=args.team,
                    customer=args.customer,
                    user=args.user,
                    scopes=frozenset(Scope(s) for s in args.scope) if args.scope else DEFAULT_SCOPES,
                    allowed_models=frozenset(args.model),
                    allowed_aliases=frozenset(args.alias),
                    allowed_policies=frozenset(args.policy),
                    default_policy=args.default_policy,
                ),
                expires_at=time.time() + args.expires_days * 86_400 if args.expires_days else None,
            )
            print(secret)
            print(f"created {record.key_id}: the secret above is shown once; store it now", file=sys.stderr)
        elif args.action == "rotate":
            record, secret = await rotate_key(store, args.key_id, args.grace_s)
            print(secret)
            print(f"rotated {record.key_id}; old secrets stop in {args.grace_s:.0f} s", file=sys.stderr)
        elif args.action in ("disable", "enable"):
            record = await set_enabled(store, args.key_id, args.action == "enable")
            print(f"{record.key_id} {'enabled' if record.enabled else 'disabled'}")
        else:
            _list(await store.list())
    finally:
        await store.stop()
    return 0


def _list(records: list[KeyRecord]) -> None:
    print(
        f"{'key id':<24} {'team':<14} {'customer':<14} {'enabled':<8} {'secrets':>7}  {'expires':<20} scopes"
    )
    for r in sorted(records, key=lambda r: r.key_id):
        ident = r.identity
        expires = (
            datetime.datetime.fromtimestamp(r.expires_at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            if r.expires_at
            else "-"
        )
        scopes = ",".join(sorted(s.value for s in ident.scopes))
        live = len(r.live_credentials(time.time()))
        columns = f"{r.key_id:<24} {ident.team:<14} {ident.customer:<14} {r.enabled!s:<8} {live:>7}"
        print(f"{columns}  {expires:<20} {scopes}")


def _store(args: argparse.Namespace) -> KeyStore:
    if args.redis:
        # Imported only for --redis (router_service/redis_client.py says why). No record cache:
        # every admin operation reads what is in Redis now.
        from router_service.keystore.redis_store import RedisKeyStore
        from router_service.redis_client import redis_from_url

        client = redis_from_url(args.redis, timeout_s=10.0)  # an operator waits 10 s, not forever
        return RedisKeyStore(client, prefix=args.redis_prefix, cache_ttl_s=0)
    if not args.keys_file:
        raise ValueError("name the store: --keys-file FILE or --redis URL (or ROUTER_KEYS_FILE)")
    return FileKeyStore(Path(args.keys_file), poll_s=0)
