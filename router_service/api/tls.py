"""TLS and mTLS for the gRPC server, from `server.tls`: the server's certificate and key, and
optionally a client CA (mTLS), with client certificates required or merely accepted.

Files are read once at start (a restart picks up renewed certificates; certificate rotation
without a restart is not implemented yet)."""

from __future__ import annotations

from pathlib import Path

import grpc


def server_credentials(
    cert_file: str, key_file: str, client_ca_file: str = "", require_client_cert: bool = False
) -> grpc.ServerCredentials:
    cert, key = Path(cert_file).read_bytes(), Path(key_file).read_bytes()
    client_ca = Path(client_ca_file).read_bytes() if client_ca_file else None
    if require_client_cert and client_ca is None:
        raise ValueError("server.tls.require_client_cert needs server.tls.client_ca_file")
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=require_client_cert
    )
