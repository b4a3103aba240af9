"""Whether a provider URL would carry its API key in clear (standard library only: config imports it).

Plain http is fine to loopback (the simulators, a local vLLM): the key never leaves the machine. To
any other host it crosses a network readable by others, so config refuses it unless the provider
sets `allow_insecure: true`, and the router warns at start when one does.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_cleartext_remote(url: str) -> bool:
    """True for an http:// URL whose host is not loopback (127.0.0.0/8, ::1, localhost)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "http":
        return False
    return not is_loopback_host(parts.hostname or "")


def is_loopback_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):  # RFC 6761: always loopback
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
