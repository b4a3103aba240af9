"""TLS and mTLS on a real router: a test CA generated here, a client certificate mapped to an
identity, and certificates the server must refuse."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.app import RouterApp
from router_service.identity.model import Identity
from router_service.keystore.admin import create_key
from router_service.keystore.file_store import FileKeyStore
from router_service.settings import ConfigError, parse_config
from tests.integration.conftest import Sims, chat, router_config_dict

SPIFFE_ID = "spiffe://test.local/ns/billing/sa/api"


@dataclass(frozen=True)
class Pem:
    cert: bytes
    key: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(subject: str, issuer: Pem | None, sans: list[x509.GeneralName], *, ca: bool = False) -> Pem:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    if issuer is None:
        signer, issuer_name = key, _name(subject)
    else:
        signer = serialization.load_pem_private_key(issuer.key, None)  # type: ignore[assignment]
        issuer_name = x509.load_pem_x509_certificate(issuer.cert).subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(signer, hashes.SHA256())  # type: ignore[arg-type]
    return Pem(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


@dataclass(frozen=True)
class Pki:
    ca: Pem
    server: Pem
    client: Pem
    stranger: Pem  # a client certificate from another CA
    dir: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = _issue("test ca", None, [], ca=True)
    server = _issue(
        "router", ca, [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    client = _issue("billing-api", ca, [x509.UniformResourceIdentifier(SPIFFE_ID)])
    other_ca = _issue("other ca", None, [], ca=True)
    stranger = _issue("billing-api", other_ca, [x509.UniformResourceIdentifier(SPIFFE_ID)])
    out = tmp_path_factory.mktemp("pki")
    for name, pem in (("ca", ca), ("server", server)):
        (out / f"{name}.crt").write_bytes(pem.cert)
        (out / f"{name}.key").write_bytes(pem.key)
    return Pki(ca, server, client, stranger, out)


async def _router(sims: Sims, pki: Pki, require_client_cert: bool) -> RouterApp:
    config = router_config_dict(sims)
    config["server"]["tls"] = {
        "cert_file": str(pki.dir / "server.crt"),
        "key_file": str(pki.dir / "server.key"),
        "client_ca_file": str(pki.dir / "ca.crt"),
        "require_client_cert": require_client_cert,
    }
    config["auth"] = {
        "mode": "required",
        "certificate_identities": {SPIFFE_ID: {"team": "billing", "customer": "acme"}},
    }
    app = RouterApp(parse_config(config))
    await app.start()
    return app


@pytest.fixture
async def mtls_router(sims: Sims, pki: Pki) -> AsyncIterator[RouterApp]:
    app = await _router(sims, pki, require_client_cert=True)
    yield app
    await app.stop(grace_s=1)


def _channel(port: int, pki: Pki, client: Pem | None) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.cert,
        private_key=client.key if client else None,
        certificate_chain=client.cert if client else None,
    )
    return grpc.aio.secure_channel(f"localhost:{port}", credentials)


async def test_a_client_certificate_of_the_ca_is_its_mapped_identity(
    mtls_router: RouterApp, pki: Pki
) -> None:
    async with _channel(mtls_router.port, pki, pki.client) as channel:
        stub = pb_grpc.RouterServiceStub(channel)
        response = await stub.Complete(pb.CompleteRequest(chat=chat()), timeout=10)
    assert response.message.content


@pytest.mark.parametrize("who", ["stranger", "nobody"])
async def test_a_certificate_of_another_ca_or_none_is_refused(
    mtls_router: RouterApp, pki: Pki, who: str
) -> None:
    client = pki.stranger if who == "stranger" else None
    async with _channel(mtls_router.port, pki, client) as channel:
        stub = pb_grpc.RouterServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Complete(pb.CompleteRequest(chat=chat()), timeout=10)
    assert err.value.code() is grpc.StatusCode.UNAVAILABLE  # the handshake fails


async def test_plaintext_clients_cannot_talk_to_a_tls_server(mtls_router: RouterApp) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mtls_router.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pb_grpc.RouterServiceStub(channel).Complete(pb.CompleteRequest(chat=chat()), timeout=5)
    assert err.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_tls_without_client_certificates_takes_keys(sims: Sims, pki: Pki, tmp_path: Path) -> None:
    keys = FileKeyStore(tmp_path / "keys.yaml", poll_s=0)
    await keys.start()
    _, secret = await create_key(keys, Identity(key_id="k_tls"))
    config = router_config_dict(sims)
    config["server"]["tls"] = {
        "cert_file": str(pki.dir / "server.crt"),
        "key_file": str(pki.dir / "server.key"),
    }
    config["auth"] = {"mode": "required", "keys_file": str(keys.path)}
    app = RouterApp(parse_config(config))
    await app.start()
    try:
        async with _channel(app.port, pki, None) as channel:
            stub = pb_grpc.RouterServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Complete(pb.CompleteRequest(chat=chat()), timeout=10)
            assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
            metadata = (("authorization", f"Bearer {secret}"),)
            await stub.Complete(pb.CompleteRequest(chat=chat()), metadata=metadata, timeout=10)
    finally:
        await app.stop(grace_s=1)


def test_certificate_identities_need_required_client_certificates(sims: Sims, pki: Pki) -> None:
    config = router_config_dict(sims)
    config["server"]["tls"] = {
        "cert_file": str(pki.dir / "server.crt"),
        "key_file": str(pki.dir / "server.key"),
    }
    config["auth"] = {"mode": "required", "certificate_identities": {SPIFFE_ID: {}}}
    with pytest.raises(ConfigError, match=r"auth\.certificate_identities: needs server\.tls"):
        parse_config(config)
