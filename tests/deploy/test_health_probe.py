"""deploy/health_probe.py, as the kubelet runs it: the Deployment's exact probe command, in its own
process, against the router's real gRPC server (create_server) with TLS from a CA made here."""

from __future__ import annotations

import asyncio
import datetime
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health

from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.api.server import create_server, mark_serving
from router_service.config_schema import ServerConfig, TlsConfig
from tests.deploy.conftest import DEPLOY, load_yaml_documents

[DEPLOYMENT] = [
    doc for doc in load_yaml_documents(DEPLOY / "kubernetes" / "router.yaml") if doc["kind"] == "Deployment"
]
[CONTAINER] = DEPLOYMENT["spec"]["template"]["spec"]["containers"]
PROBE = CONTAINER["readinessProbe"]["exec"]["command"]
SERVER_NAME = PROBE[PROBE.index("--server-name") + 1]


@dataclass(frozen=True)
class Pem:
    cert: bytes
    key: bytes


def _issue(subject: str, issuer: Pem | None, dns_names: list[str], *, ca: bool = False) -> Pem:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    signer, issuer_name = key, name
    if issuer is not None:
        signer = serialization.load_pem_private_key(issuer.key, None)  # type: ignore[assignment]
        issuer_name = x509.load_pem_x509_certificate(issuer.cert).subject
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if dns_names:
        sans = x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names])
        usages = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
        builder = builder.add_extension(sans, critical=False).add_extension(usages, critical=False)
    cert = builder.sign(signer, hashes.SHA256())  # type: ignore[arg-type]
    pkcs8 = serialization.PrivateFormat.PKCS8
    return Pem(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption()),
    )


@dataclass(frozen=True)
class Secret:
    """What the llm-router-tls Secret holds, as files: tls.crt, tls.key, ca.crt."""

    dir: Path

    @classmethod
    def write(cls, where: Path, ca: Pem, server: Pem) -> Secret:
        where.mkdir()
        (where / "tls.crt").write_bytes(server.cert)
        (where / "tls.key").write_bytes(server.key)
        (where / "ca.crt").write_bytes(ca.cert)
        return cls(where)


@pytest.fixture(scope="module")
def ca() -> Pem:
    return _issue("test ca", None, [], ca=True)


@pytest.fixture(scope="module")
def secret(ca: Pem, tmp_path_factory: pytest.TempPathFactory) -> Secret:
    # Only the names of deploy/kubernetes/certificate.yaml: no 127.0.0.1, which the probe dials.
    server = _issue("llm-router", ca, [SERVER_NAME])
    return Secret.write(tmp_path_factory.mktemp("tls") / "llm-router-tls", ca, server)


@dataclass
class Router:
    port: int
    health: health.aio.HealthServicer


async def _serve(secret: Secret, *, require_client_cert: bool = False) -> tuple[grpc.aio.Server, Router]:
    tls = TlsConfig(
        cert_file=str(secret.dir / "tls.crt"),
        key_file=str(secret.dir / "tls.key"),
        client_ca_file=str(secret.dir / "ca.crt") if require_client_cert else "",
        require_client_cert=require_client_cert,
    )
    server, port, health_servicer = create_server(
        pb_grpc.RouterServiceServicer(), ServerConfig(listen="127.0.0.1:0", tls=tls)
    )
    await server.start()
    await mark_serving(health_servicer)
    return server, Router(port, health_servicer)


@pytest.fixture
async def router(secret: Secret) -> AsyncIterator[Router]:
    server, running = await _serve(secret)
    yield running
    await server.stop(None)


async def _probe(port: int, ca: Path, *extra: str) -> tuple[int, str]:
    """The Deployment's probe command with the test's python, CA path and port; (exit code, stderr)."""
    command = list(PROBE)
    command[0] = sys.executable
    command[1] = str(DEPLOY / "health_probe.py")  # where the Dockerfile copies it from
    command[command.index("--ca") + 1] = str(ca)
    assert command[-1] == "127.0.0.1:50051"
    command[-1] = f"127.0.0.1:{port}"
    process = await asyncio.create_subprocess_exec(
        *command, *extra, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_a_serving_router_passes_over_tls(router: Router, secret: Secret) -> None:
    code, stderr = await _probe(router.port, secret.dir / "ca.crt")
    assert code == 0, stderr


async def test_a_draining_router_fails_with_not_serving(router: Router, secret: Secret) -> None:
    # What SIGTERM does first (app.py): readiness fails before the server stops accepting.
    await router.health.enter_graceful_shutdown()
    code, stderr = await _probe(router.port, secret.dir / "ca.crt")
    assert code == 1 and "NOT_SERVING" in stderr


async def test_a_certificate_from_another_ca_fails(router: Router, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.crt"
    other.write_bytes(_issue("other ca", None, [], ca=True).cert)
    code, stderr = await _probe(router.port, other)
    assert code == 1 and "UNAVAILABLE" in stderr


async def test_a_certificate_for_another_name_fails(router: Router, secret: Secret) -> None:
    code, stderr = await _probe(router.port, secret.dir / "ca.crt", "--server-name", "elsewhere.example")
    assert code == 1 and "UNAVAILABLE" in stderr


async def test_no_router_fails(secret: Secret) -> None:
    server, running = await _serve(secret)
    await server.stop(None)
    code, stderr = await _probe(running.port, secret.dir / "ca.crt")
    assert code == 1 and "UNAVAILABLE" in stderr


async def test_with_mtls_it_passes_only_with_a_client_certificate(secret: Secret) -> None:
    server, running = await _serve(secret, require_client_cert=True)
    try:
        code, _ = await _probe(running.port, secret.dir / "ca.crt")
        assert code == 1  # the handshake wants a client certificate
        # The pod's own certificate (client auth usage) as the client's.
        own = ("--cert", str(secret.dir / "tls.crt"), "--key", str(secret.dir / "tls.key"))
        code, stderr = await _probe(running.port, secret.dir / "ca.crt", *own)
        assert code == 0, stderr
    finally:
        await server.stop(None)
