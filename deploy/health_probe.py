"""gRPC health check over TLS, for Kubernetes exec probes: exit 0 if the router answers SERVING.

The kubelet's own gRPC probes speak plaintext only, and the router has one listener, which is TLS
in deploy/kubernetes, so the probes run this inside the container instead:

  python /opt/llm-router/health_probe.py --ca /etc/llm-router-tls/ca.crt \
      --server-name llm-router.llm-router.svc.cluster.local 127.0.0.1:50051

It dials the pod's own port, checks the server's certificate against `--ca` under the name the
clients use (`--server-name`: the name in the certificate, not 127.0.0.1), and asks
grpc.health.v1 for the whole server (""), which turns NOT_SERVING on SIGTERM. Any other answer,
a failed handshake or no answer within `--timeout` exits 1 with the reason on stderr. It sends
no API key (health needs none); with `require_client_cert: true` (mTLS) pass `--cert`/`--key`
too (deploy/README.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="HOST:PORT of the router, e.g. 127.0.0.1:50051")
    # Empty or missing file: the system's roots (a certificate from a public CA).
    parser.add_argument("--ca", type=Path, default=None, help="CA bundle that signed the server certificate")
    parser.add_argument("--server-name", default="", help="name to verify in the server's certificate")
    # mTLS (`require_client_cert: true`): a certificate the router's client CA verifies.
    parser.add_argument("--cert", type=Path, default=None, help="client certificate (PEM), for mTLS")
    parser.add_argument("--key", type=Path, default=None, help="its private key (PEM)")
    parser.add_argument("--timeout", type=float, default=3.0, help="deadline in seconds")
    return parser.parse_args(argv)


def _root_certificates(ca: Path | None) -> bytes | None:
    if ca is None or not ca.is_file():
        return None
    return ca.read_bytes() or None


def check(args: argparse.Namespace) -> str:
    """The serving status's name, e.g. "SERVING"; grpc.RpcError when the call fails."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_root_certificates(args.ca),
        private_key=args.key.read_bytes() if args.key else None,
        certificate_chain=args.cert.read_bytes() if args.cert else None,
    )
    options = [("grpc.ssl_target_name_override", args.server_name)] if args.server_name else []
    with grpc.secure_channel(args.target, credentials, options=options) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=args.timeout)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        status = check(args)
    except grpc.RpcError as exc:
        print(f"health check failed: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    if status != "SERVING":
        print(f"health: {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
