"""What a gRPC call presents as credentials: the bearer token from `authorization` metadata, and
the verified client certificate's identity when the server runs mTLS.

The certificate identity is the first URI SAN (a SPIFFE id such as
`spiffe://cluster.local/ns/billing/sa/api`, as service meshes issue them), else the first DNS
SAN, else the subject's common name; `auth.certificate_identities` maps these strings to
identities. gRPC only fills the auth context with a certificate it verified against the
configured client CA, so nothing here re-checks it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import grpc

from router_service.errors import UnauthenticatedError
from router_service.identity.authenticator import bearer_secret


@dataclass(frozen=True, slots=True)
class Presented:
    bearer: str | None
    certificate_subject: str | None


def presented_credentials(context: grpc.aio.ServicerContext, *, certificates: bool = True) -> Presented:
    """Raises UnauthenticatedError for an `authorization` value that is not a bearer token.
    `certificates=False` skips the auth context (a few us a call) where no certificate can map."""
    subject = _certificate_subject(context) if certificates else None
    return Presented(_bearer(context.invocation_metadata() or ()), subject)


def _bearer(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    for key, value in metadata:
        if key == "authorization":
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            token = bearer_secret(text)
            if token is None:
                raise UnauthenticatedError("authorization metadata must be 'Bearer <key>'")
            return token
    return None


def _certificate_subject(context: grpc.aio.ServicerContext) -> str | None:
    auth = context.auth_context()
    if not auth or auth.get("transport_security_type") != [b"ssl"]:
        return None
    for name in auth.get("x509_subject_alternative_name", ()):
        text = str(name.decode())
        if "://" in text:
            return text
    sans = auth.get("x509_subject_alternative_name", ())
    if sans:
        return str(sans[0].decode())
    common = auth.get("x509_common_name", ())
    return str(common[0].decode()) if common else None
