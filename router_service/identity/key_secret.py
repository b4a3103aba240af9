"""Virtual key secrets: their format, how they are hashed for storage, and how they are checked.

A secret reads `lrk_<key id>.<43 random url-safe characters>` (256 bits of entropy). The key id
inside it is public: it finds the stored record in one lookup, and can be logged. Only a salted
hash of the whole secret is stored: `sha256$<salt hex>$<digest hex>`.

Why SHA-256 and not a password hash (scrypt, argon2): these secrets are random 256-bit values, not
passwords people choose, so there is nothing for a slow hash to protect against dictionary
attacks; a fast hash keeps verification in microseconds (GitHub and Stripe store API tokens the
same way). The salt makes equal secrets hash differently across records and stores.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "lrk_"
KEY_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SECRET_RE = re.compile(r"lrk_([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{43})")
# A secret shape the event/log redactor also knows (telemetry/redaction.py): never logged whole.
SECRET_PATTERN = r"\blrk_[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{16,}"
_SCHEME = "sha256"


def new_key_id() -> str:
    """A random key id: `k_` and 12 hex digits."""
    return "k_" + secrets.token_hex(6)


def new_secret(key_id: str) -> str:
    if not KEY_ID_RE.fullmatch(key_id):
        raise ValueError(f"key id must match {KEY_ID_RE.pattern}")
    return f"{PREFIX}{key_id}.{secrets.token_urlsafe(32)}"


def key_id_of(secret: str) -> str | None:
    """The key id a well-formed secret names, or None for anything else."""
    match = _SECRET_RE.fullmatch(secret)
    return match.group(1) if match else None


def hash_secret(secret: str, salt: bytes | None = None) -> str:
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hmac.new(salt, secret.encode(), hashlib.sha256).hexdigest()
    return f"{_SCHEME}${salt.hex()}${digest}"


def check_hash(stored: str) -> None:
    """Raises ValueError for a stored hash this module cannot verify (config validation)."""
    _parse(stored)


def verify_secret(secret: str, stored: str) -> bool:
    """Whether `secret` hashes to `stored`, compared in constant time."""
    salt, expected = _parse(stored)
    actual = hmac.new(salt, secret.encode(), hashlib.sha256).digest()
    return hmac.compare_digest(actual, expected)


def _parse(stored: str) -> tuple[bytes, bytes]:
    scheme, _, rest = stored.partition("$")
    salt_hex, _, digest_hex = rest.partition("$")
    if scheme != _SCHEME:
        raise ValueError(f"unknown key hash scheme {scheme!r}; expected 'sha256$<salt>$<digest>'")
    try:
        salt, digest = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)
    except ValueError:
        raise ValueError("key hash must be 'sha256$<salt hex>$<digest hex>'") from None
    if len(salt) < 8 or len(digest) != 32:
        raise ValueError("key hash needs a salt of at least 8 bytes and a 32-byte digest")
    return salt, digest
