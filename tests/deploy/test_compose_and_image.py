"""deploy/compose.yaml and deploy/Dockerfile: consistent with the code they run.

No container runs here (no Docker daemon in CI), so these check what can drift without one:
commands against the CLI, the mounted router config against the router's validation, ports and
addresses between services, topics, and what the image is built from.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from consumers.jobs import JOBS
from consumers.main import DEFAULT_METRICS_PORT
from router_launcher.cli import build_parser
from router_service.settings import load_config
from tests.deploy.conftest import DEPLOY, ROOT

COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
PROMETHEUS = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
DOCKERFILE = (DEPLOY / "Dockerfile").read_text()
ROUTER_IMAGE = "llm-router:0.1.0"


def _ours() -> dict[str, Any]:
    return {name: s for name, s in SERVICES.items() if s.get("image") == ROUTER_IMAGE}


def _port(listen: str) -> int:
    return int(listen.rpartition(":")[2])


@pytest.mark.parametrize("name", sorted(_ours()))
def test_every_command_of_ours_parses_with_the_cli(name: str) -> None:
    build_parser().parse_args(_ours()[name]["command"])


def test_the_router_config_it_mounts_is_accepted_with_the_services_environment() -> None:
    router = SERVICES["router"]
    args = build_parser().parse_args(router["command"])
    [source] = [v.split(":")[0] for v in router["volumes"] if v.split(":")[1] == str(args.config)]
    config = load_config(DEPLOY / source, router["environment"])
    assert config.events is not None and config.events.bootstrap_servers == "kafka:9092"
    assert config.events.enable_idempotence  # real Kafka, unlike the embedded broker
    assert config.server.listen == "0.0.0.0:50051" and config.metrics.listen == "0.0.0.0:9464"
    # Traces go to the compose Jaeger's OTLP/HTTP receiver.
    assert config.tracing.enabled and config.tracing.endpoint == "http://jaeger:4318/v1/traces"
    assert SERVICES["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    # Each simulated provider's URL names a sim service on the port it listens on.
    called = {"jaeger"}
    for provider in config.endpoints.values():
        host, port = re.fullmatch(r"http://([\w-]+):(\d+)/v1", provider.base_url).groups()  # type: ignore[union-attr]
        assert build_parser().parse_args(SERVICES[host]["command"]).port == int(port)
        called.add(host)
    # ...and the router starts after every service it calls (and after the topics exist).
    assert called | {"topics"} == set(router["depends_on"])


def test_the_demo_runs_without_keys_so_it_publishes_on_loopback_only() -> None:
    router = SERVICES["router"]
    args = build_parser().parse_args(router["command"])
    [source] = [v.split(":")[0] for v in router["volumes"] if v.split(":")[1] == str(args.config)]
    config = load_config(DEPLOY / source, router["environment"])
    assert config.auth.mode == "off" and config.server.tls is None  # as its comment says
    # Anyone who can reach a port may call everything: only this machine can.
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port}"


def test_prometheus_scrapes_the_metrics_ports_the_services_listen_on() -> None:
    router_env = SERVICES["router"]["environment"]
    consumers = build_parser().parse_args(SERVICES["consumers"]["command"])
    assert consumers.metrics_host == "0.0.0.0" and consumers.metrics_port == DEFAULT_METRICS_PORT
    listening = {"router": _port(router_env["ROUTER_METRICS_LISTEN"]), "consumers": consumers.metrics_port}
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in PROMETHEUS["scrape_configs"]}
    # The alerts select on these job names.
    assert jobs == {
        "llm-router": [f"router:{listening['router']}"],
        "llm-router-consumers": [f"consumers:{listening['consumers']}"],
    }


def test_the_topics_service_creates_what_the_router_and_consumers_use() -> None:
    script = SERVICES["topics"]["command"][0]
    created = set(re.findall(r"--topic\s+([\w.]+)", script))
    created |= set(re.search(r"for t in ([^;]+);", script).group(1).split())  # type: ignore[union-attr]
    config = load_config(ROOT / "config" / "embedded.yaml", SERVICES["router"]["environment"])
    assert config.events is not None
    assert created == {config.events.topic, *(job.snapshot_topic for job in JOBS.values())}


def test_every_host_path_it_mounts_exists() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source}"


def test_the_image_is_built_from_files_that_exist_and_runs_our_entry_point() -> None:
    copies = re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE, re.MULTILINE)
    sources = [path for line in copies for path in line.split()]
    assert sources and all((ROOT / path).exists() for path in sources)
    # The build context admits exactly those (everything else is excluded).
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {line[1:].rstrip("/") for line in ignore if line.startswith("!")} == set(sources)

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entrypoint = re.search(r"^ENTRYPOINT \[\"([\w-]+)\"\]$", DOCKERFILE, re.MULTILINE).group(1)  # type: ignore[union-attr]
    assert entrypoint in scripts
    cmd = yaml.safe_load(re.search(r"^CMD (\[.+\])$", DOCKERFILE, re.MULTILINE).group(1))  # type: ignore[union-attr]
    assert build_parser().parse_args(cmd).config == Path("/etc/llm-router/router.yaml")


def test_the_image_user_is_the_one_the_manifests_run_as() -> None:
    user = re.search(r"^USER (\d+):(\d+)$", DOCKERFILE, re.MULTILINE)
    assert user is not None
    router = yaml.safe_load_all((DEPLOY / "kubernetes" / "router.yaml").read_text())
    [deployment] = [doc for doc in router if doc["kind"] == "Deployment"]
    context = deployment["spec"]["template"]["spec"]["securityContext"]
    assert (str(context["runAsUser"]), str(context["runAsGroup"])) == user.groups()
