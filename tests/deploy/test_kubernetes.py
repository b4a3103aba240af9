"""deploy/kubernetes: valid objects for the Kubernetes API, and consistent with the code they run
(the router's config parses, ports and paths agree with it, commands parse with the CLI)."""

from __future__ import annotations

import inspect
import re
import shlex
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from consumers.jobs import DEFAULT_INPUT_TOPIC, JOBS
from consumers.main import DEFAULT_METRICS_PORT
from deploy import health_probe
from router_launcher.cli import build_parser
from router_service.routerctl import _parser as routerctl_parser
from router_service.settings import RuntimeConfig, load_config
from router_service.telemetry.publisher import KafkaPublisher
from tests.deploy.conftest import DEPLOY, load_yaml_documents

KUBERNETES = DEPLOY / "kubernetes"
KUSTOMIZATION = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
# Native gRPC probes are GA from 1.27; we check against a version clusters commonly run.
KUBERNETES_VERSION = "1.32"


def _objects() -> list[dict[str, Any]]:
    return [doc for name in KUSTOMIZATION["resources"] for doc in load_yaml_documents(KUBERNETES / name)]


def _object(kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in _objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def _kafka_env() -> dict[str, str]:
    [generator] = [g for g in KUSTOMIZATION["configMapGenerator"] if g["name"] == "llm-router-kafka"]
    return dict(literal.split("=", 1) for literal in generator["literals"])


def _secret_env() -> dict[str, str]:
    """The router's variables set from Secrets the operator creates (deploy/README.md), each as a
    placeholder naming its Secret and key."""
    env = {}
    for var in _container(_router()).get("env", []):
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            assert ref.get("optional") is not True  # a missing Secret stops the pod, visibly
            env[var["name"]] = f"secret:{ref['name']}/{ref['key']}"
    return env


def _router_config() -> RuntimeConfig:
    [generator] = [g for g in KUSTOMIZATION["configMapGenerator"] if g["name"] == "llm-router-config"]
    [entry] = generator["files"]
    key, _, file = entry.partition("=")
    assert key == "router.yaml"
    return load_config(KUBERNETES / file, _kafka_env() | _secret_env())


def _router() -> dict[str, Any]:
    return _object("Deployment", "llm-router")


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _ports(container: dict[str, Any]) -> dict[str, int]:
    return {port["name"]: port["containerPort"] for port in container["ports"]}


@pytest.mark.parametrize("obj", _objects(), ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_every_object_is_valid_for_the_kubernetes_api(obj: dict[str, Any]) -> None:
    # strict: unknown fields (a typo, or a field of another version) fail too.
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_validation_rejects_a_misspelt_field() -> None:
    broken = _router()
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"grpc": {"port": 50051}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_router_config_is_one_the_router_accepts_and_its_ports_are_the_containers() -> None:
    config = _router_config()
    router = _container(_router())
    ports = _ports(router)
    assert config.server.listen == f"0.0.0.0:{ports['grpc']}"
    assert config.metrics.listen == f"0.0.0.0:{ports['metrics']}"
    assert config.server.workers == 1  # scaled with replicas
    template = _router()["spec"]["template"]["metadata"]["annotations"]
    assert template["prometheus.io/port"] == str(ports["metrics"])
    assert (
        config.events is not None
        and config.events.bootstrap_servers == _kafka_env()["KAFKA_BOOTSTRAP_SERVERS"]
    )
    assert config.fleet is not None


def test_the_router_runs_its_mounted_config_and_spools_to_its_volume() -> None:
    deployment = _router()
    container = _container(deployment)
    args = build_parser().parse_args(container["args"])
    assert args.command == "serve"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert args.config == Path(mounts["config"]) / "router.yaml"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "llm-router-config"

    config = _router_config()
    assert config.events is not None
    assert Path(config.events.spool_dir) == Path(mounts["spool"])
    size_limit = volumes["spool"]["emptyDir"]["sizeLimit"]
    assert re.fullmatch(r"\d+Mi", size_limit)
    # Over the volume's limit the kubelet evicts the pod: the spool's own bound must hit first.
    assert config.events.spool_max_bytes < int(size_limit[:-2]) * 2**20


def test_the_grace_period_covers_the_whole_shutdown() -> None:
    spec = _router()["spec"]["template"]["spec"]
    pre_stop = _container(_router())["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    flush_budget = inspect.signature(KafkaPublisher.stop).parameters["timeout"].default
    needed = float(pre_stop[1]) + _router_config().server.grace_period_s + flush_budget
    assert spec["terminationGracePeriodSeconds"] > needed


def test_the_consumers_command_parses_and_serves_metrics_on_the_declared_port() -> None:
    deployment = _object("StatefulSet", "llm-router-consumers")
    container = _container(deployment)
    args = build_parser().parse_args(container["args"])
    assert (args.command, args.kind, args.metrics_host) == ("consume", "all", "0.0.0.0")
    assert args.metrics_port == _ports(container)["metrics"] == DEFAULT_METRICS_PORT
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(args.metrics_port)


def test_the_topics_job_creates_the_topics_the_router_and_consumers_use() -> None:
    [container] = _object("Job", "llm-router-topics")["spec"]["template"]["spec"]["containers"]
    script = container["args"][0]
    created = set(re.findall(r"--topic\s+(\S+)", script))
    loop = shlex.split(re.search(r"for t in ([^;]+);", script).group(1))  # type: ignore[union-attr]
    created |= {name for word in loop for name in _brace_expanded(word)}
    created.discard('"$t"')
    config = _router_config()
    assert config.events is not None and config.fleet is not None
    used = {config.events.topic, DEFAULT_INPUT_TOPIC, *(job.snapshot_topic for job in JOBS.values())}
    used |= {config.fleet.health_topic, config.fleet.quality_topic, config.fleet.costs_topic}
    used |= {f"{job.snapshot_topic}.dedupe" for job in JOBS.values()}  # each job's dedupe log
    assert created == used


def _brace_expanded(word: str) -> list[str]:
    """bash's expansion of one `a{b,c}d` group (all the topics job uses)."""
    match = re.fullmatch(r"([^{]*)\{([^}]*)\}(.*)", word)
    if match is None:
        return [word]
    head, options, tail = match.groups()
    return [f"{head}{option}{tail}" for option in options.split(",")]


def test_each_consumer_pod_is_a_static_group_member_under_its_stable_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    statefulset = _object("StatefulSet", "llm-router-consumers")
    env = {var["name"]: var for var in _container(statefulset)["env"]}
    ref = env["CONSUMER_GROUP_INSTANCE_ID"]["valueFrom"]["fieldRef"]
    assert ref == {"fieldPath": "metadata.name"}  # stable in a StatefulSet, across replacements
    # The pod's command takes its member name from that variable (no flag overrides it).
    monkeypatch.setenv("CONSUMER_GROUP_INSTANCE_ID", "llm-router-consumers-1")
    args = build_parser().parse_args(_container(statefulset)["args"])
    assert args.group_instance_id == "llm-router-consumers-1"


def test_every_container_runs_the_image_kustomize_rewrites_or_a_pinned_one() -> None:
    [image] = KUSTOMIZATION["images"]
    for obj in _objects():
        for container in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            assert container["image"] == image["name"] or re.fullmatch(
                r"[\w./-]+:\d[\w.-]*", container["image"]
            )


def _certificate() -> dict[str, Any]:
    [certificate] = load_yaml_documents(KUBERNETES / "certificate.yaml")
    return dict(certificate)


def _mounts(container: dict[str, Any]) -> dict[str, Path]:
    return {m["name"]: Path(m["mountPath"]) for m in container["volumeMounts"]}


def _volumes() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in _router()["spec"]["template"]["spec"]["volumes"]}


def test_every_call_needs_a_key_from_the_redis_every_replica_shares() -> None:
    config = _router_config()
    assert config.auth.mode == "required"
    # The URL (with its password) comes from a Secret, never from the ConfigMap.
    assert config.auth.redis_url.get_secret_value() == "secret:llm-router-keys/redis-url"
    assert not config.auth.keys_file  # one file per pod would not be shared by the replicas
    assert _router()["spec"]["replicas"] > 1


def test_routerctl_keys_in_the_pod_finds_the_same_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    # `kubectl exec deploy/llm-router -- routerctl keys list` (deploy/README.md): the variable
    # routerctl reads is the one auth.redis_url is read from, by the kubelet's $(VAR) expansion.
    env = {var["name"]: var for var in _container(_router())["env"]}
    assert env["ROUTER_KEYS_REDIS"]["value"] == "$(ROUTER_KEYS_REDIS_URL)"
    names = list(env)
    assert names.index("ROUTER_KEYS_REDIS_URL") < names.index("ROUTER_KEYS_REDIS")  # defined first
    monkeypatch.setenv("ROUTER_KEYS_REDIS", "redis://keys:6379/0")
    assert routerctl_parser().parse_args(["keys", "list"]).redis == "redis://keys:6379/0"


def test_production_serves_no_reflection_which_would_answer_without_a_key() -> None:
    assert _router_config().server.reflection is False


def test_the_server_speaks_tls_with_the_certificate_from_the_tls_secret() -> None:
    tls = _router_config().server.tls
    assert tls is not None
    mount = _mounts(_container(_router()))["tls"]
    assert Path(tls.cert_file) == mount / "tls.crt" and Path(tls.key_file) == mount / "tls.key"
    # Not nested in the ConfigMap's mount.
    assert not mount.is_relative_to(_mounts(_container(_router()))["config"])
    secret = _volumes()["tls"]["secret"]["secretName"]
    certificate = _certificate()
    assert certificate["kind"] == "Certificate" and certificate["spec"]["secretName"] == secret
    assert certificate["metadata"]["namespace"] == KUSTOMIZATION["namespace"]
    # The headless Service's name, as clients dial it, is in the certificate.
    service = f"{_object('Service', 'llm-router')['metadata']['name']}.{KUSTOMIZATION['namespace']}"
    assert f"{service}.svc.cluster.local" in certificate["spec"]["dnsNames"]
    assert "certificate.yaml" not in KUSTOMIZATION["resources"]  # needs cert-manager's CRDs


@pytest.mark.parametrize("probe", ["startupProbe", "readinessProbe", "livenessProbe"])
def test_the_probes_check_grpc_health_over_tls_on_the_pods_own_port(probe: str) -> None:
    container = _container(_router())
    command = container[probe]["exec"]["command"]
    assert command[0] == "python"
    # The script is the one the image copies to that path.
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(rf"^COPY deploy/health_probe.py {re.escape(command[1])}$", dockerfile, re.MULTILINE)
    args = health_probe.parse_args(command[2:])
    host, _, port = args.target.rpartition(":")
    assert host == "127.0.0.1" and int(port) == _ports(container)["grpc"]
    # Verified against the CA of the mounted TLS Secret, under a name the certificate carries.
    assert args.ca == _mounts(container)["tls"] / "ca.crt"
    assert args.server_name in _certificate()["spec"]["dnsNames"]
    tls = _router_config().server.tls
    assert tls is not None and not tls.require_client_cert  # else the probe needs --cert/--key
    # The probe gives up before the kubelet does, so a hung router reads as a failure with a reason.
    assert args.timeout < container[probe]["timeoutSeconds"]
