"""The deployment files agree with the code.

No network and no Docker: every YAML and XML file under ``deploy/`` is parsed (except
``deploy/kafka/``, the local development broker) and compared with what the code defines:
settings names (``AGENTLEDGER_*``), CLI commands, Kafka topic names, ports and probe paths,
the ClickHouse cluster and users, and the OpenTelemetry Collector configuration.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from agentledger.collector.settings import CollectorSettings
from agentledger.pipeline.derive.settings import JobSettings
from agentledger.pipeline.settings import KafkaSettings, PipelineSettings, StoreSettings
from agentledger.schemas import topics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
ENV_EXAMPLE = DEPLOY / ".env.example"
K8S = DEPLOY / "kubernetes"
OTEL = DEPLOY / "otel-collector"
CLICKHOUSE = DEPLOY / "clickhouse"
NOT_OURS = (DEPLOY / "kafka",)  # the development broker, maintained separately

SETTINGS_CLASSES = (CollectorSettings, StoreSettings, KafkaSettings, PipelineSettings, JobSettings)
IMAGE = "agentledger"
# The commands the deployment runs; each must exist in the CLI.
COLLECTOR_CMD = ("collector",)
PIPELINE_CMD = ("pipeline", "run")
MIGRATE_CMD = ("migrate",)
WILDCARD_HOSTS = {"0.0.0.0", "::", "[::]"}
ENV_TOKEN = re.compile(r"\bAGENTLEDGER_[A-Z0-9_]+\b")
URL_IN_TEXT = re.compile(r"https?://([A-Za-z0-9_.\-\[\]]+):(\d+)(/[A-Za-z0-9_/.\-]*)?")
COMPOSE_VAR = re.compile(r"\$\{[^}]*\}")


# --- files --------------------------------------------------------------------------------------


def _ours(path: Path) -> bool:
    return not any(path == d or d in path.parents for d in NOT_OURS)


DEPLOY_FILES = sorted(
    p for p in DEPLOY.rglob("*") if p.is_file() and _ours(p) and "__pycache__" not in p.parts
)
YAML_FILES = [p for p in DEPLOY_FILES if p.suffix in (".yml", ".yaml")]
XML_FILES = [p for p in DEPLOY_FILES if p.suffix == ".xml"]


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


@cache
def _yaml_docs(path: Path) -> tuple[Any, ...]:
    with path.open(encoding="utf-8") as fh:
        return tuple(doc for doc in yaml.safe_load_all(fh) if doc is not None)


@cache
def _xml_root(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def _compose() -> dict[str, Any]:
    (doc,) = _yaml_docs(COMPOSE)
    assert isinstance(doc, dict)
    return doc


def _services() -> dict[str, dict[str, Any]]:
    return dict(_compose()["services"])


def _k8s_objects() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.glob("*.y*ml")):
        for doc in _yaml_docs(path):
            if (
                isinstance(doc, dict)
                and doc.get("kind")
                and not str(doc.get("apiVersion", "")).startswith("kustomize.config.k8s.io")
            ):
                found.append((path, doc))
    return found


def _k8s(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in _k8s_objects() if doc["kind"] == kind]


# --- what the code defines -----------------------------------------------------------------------


def _env_name(cls: Any, name: str) -> str:
    return (str(cls.model_config.get("env_prefix", "")) + name).upper()


@cache
def settings_env_names() -> frozenset[str]:
    return frozenset(_env_name(cls, name) for cls in SETTINGS_CLASSES for name in cls.model_fields)


def _default(cls: Any, name: str) -> Any:
    return cls.model_fields[name].default


COLLECTOR_PORT = _default(CollectorSettings, "port")
METRICS_PORT = _default(PipelineSettings, "metrics_port")
MAX_RECORD_BYTES = _default(KafkaSettings, "max_record_bytes")
TOPIC_CONSTANTS = {
    "SPANS_TOPIC": topics.SPANS_TOPIC,
    "LOGS_TOPIC": topics.LOGS_TOPIC,
    "DEAD_LETTER_TOPIC": topics.DEAD_LETTER_TOPIC,
    "FEEDBACK_TOPIC": topics.FEEDBACK_TOPIC,
    "INTENTS_TOPIC": topics.INTENTS_TOPIC,
    "CONTROLS_TOPIC": topics.CONTROLS_TOPIC,
}
TOPIC_NAMES = frozenset(TOPIC_CONSTANTS.values())
# AGENTLEDGER_KAFKA_SPANS_TOPIC -> agentledger.spans, ... from the KafkaSettings fields.
TOPIC_ENV = {
    _env_name(KafkaSettings, name): _default(KafkaSettings, name)
    for name in KafkaSettings.model_fields
    if name.endswith("_topic")
}


def _cli_root() -> Any:
    import typer

    from agentledger.cli import app

    return typer.main.get_command(app)


def _is_group(cmd: Any) -> bool:
    # Typer may vendor click (typer._click): recognise groups by their sub-commands, not by class.
    return isinstance(getattr(cmd, "commands", None), dict)


def _walk_cli(group: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    found: dict[tuple[str, ...], Any] = {}
    for name, cmd in group.commands.items():
        path = prefix + (name,)
        found[path] = cmd
        if _is_group(cmd):
            found.update(_walk_cli(cmd, path))
    return found


def resolve_cli(args: list[str]) -> tuple[tuple[str, ...], Any]:
    """``["pipeline", "run", "--x"]`` -> (("pipeline", "run"), the click command); LookupError if
    the words are not a command of ``agentledger`` or an option is not one of its options."""
    cmd = _cli_root()
    path: tuple[str, ...] = ()
    rest = list(args)
    while rest and _is_group(cmd) and not rest[0].startswith("-"):
        word = rest.pop(0)
        sub = cmd.commands.get(word)
        if sub is None:
            raise LookupError(
                f"`agentledger {' '.join(path + (word,))}` is not a command "
                f"(`agentledger {' '.join(path)}` has: {sorted(cmd.commands)})"
            )
        path, cmd = path + (word,), sub
    if _is_group(cmd):
        raise LookupError(
            f"`agentledger {' '.join(path)}` is a group; name one of {sorted(cmd.commands)}"
        )
    options = {opt for param in cmd.params for opt in (*param.opts, *param.secondary_opts)}
    for token in rest:
        if token.startswith("-") and token.split("=", 1)[0] not in options | {"--help"}:
            raise LookupError(
                f"`agentledger {' '.join(path)}` has no option {token} (has {sorted(options)})"
            )
    return path, cmd


@cache
def dockerfile_env() -> dict[str, str]:
    """ENV of the image's final stage."""
    env: dict[str, str] = {}
    for instruction in _dockerfile_instructions():
        keyword, _, rest = instruction.partition(" ")
        if keyword.upper() == "FROM":
            env = {}
        elif keyword.upper() == "ENV":
            for item in shlex.split(rest):
                key, sep, value = item.partition("=")
                if sep:
                    env[key] = value
    return env


@cache
def _dockerfile_instructions() -> tuple[str, ...]:
    lines, current = [], ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append((current + stripped).strip())
        current = ""
    if current:
        lines.append(current.strip())
    return tuple(lines)


# --- containers: what compose and Kubernetes run ----------------------------------------------------


@dataclass
class Probe:
    kind: str  # readiness, liveness, startup, healthcheck, metrics
    port: int
    path: str


@dataclass
class Container:
    where: str
    image: str
    argv: list[str]
    env: dict[str, str | None]  # None: from a Secret, value not in the repository
    ports: list[int] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    replicas: int = 1

    @property
    def ours(self) -> bool:
        return _image_name(self.image) == IMAGE

    @property
    def command(self) -> tuple[str, ...]:
        assert self.argv and self.argv[0] == "agentledger", (
            f"{self.where}: runs {self.argv}, not agentledger"
        )
        return resolve_cli(self.argv[1:])[0]

    def effective(self, name: str) -> str | None:
        """A setting as the process sees it: container env, else the image's ENV."""
        if name in self.env:
            return self.env[name]
        return dockerfile_env().get(name) if self.ours else None


def _image_name(image: str) -> str:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def _argv(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


def _compose_env(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {str(k): None if v is None else str(v) for k, v in env.items()}


def _compose_ports(service: dict[str, Any]) -> list[int]:
    ports = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports.append(int(entry["target"]))
        else:
            ports.append(int(str(entry).split("/")[0].rsplit(":", 1)[-1]))
    return ports


def _urls(text: str) -> list[tuple[str, int, str]]:
    return [(m.group(1), int(m.group(2)), m.group(3) or "/") for m in URL_IN_TEXT.finditer(text)]


def compose_containers() -> list[Container]:
    found = []
    for name, svc in _services().items():
        image = str(svc.get("image", ""))
        if not image and "build" in svc:
            image = IMAGE
        ours = _image_name(image) == IMAGE
        entrypoint = (
            _argv(svc.get("entrypoint"))
            if "entrypoint" in svc
            else (["agentledger"] if ours else [])
        )
        probes = []
        health = svc.get("healthcheck") or {}
        test = health.get("test")
        if test:
            for _, port, path in _urls(
                " ".join(_argv(test)) if isinstance(test, list) else str(test)
            ):
                probes.append(Probe("healthcheck", port, path))
        replicas = int((svc.get("deploy") or {}).get("replicas", 1))
        found.append(
            Container(
                where=f"{_rel(COMPOSE)}: services.{name}",
                image=image,
                argv=entrypoint + _argv(svc.get("command")),
                env=_compose_env(svc),
                ports=_compose_ports(svc),
                probes=probes,
                replicas=replicas,
            )
        )
    return found


def _pod_template(doc: dict[str, Any]) -> dict[str, Any] | None:
    kind = doc["kind"]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return dict(doc["spec"]["template"])
    if kind == "CronJob":
        return dict(doc["spec"]["jobTemplate"]["spec"]["template"])
    if kind == "Pod":
        return doc
    return None


def _configmap_data(name: str) -> dict[str, str]:
    for cm in _k8s("ConfigMap"):
        if cm["metadata"]["name"] == name:
            return {str(k): str(v) for k, v in (cm.get("data") or {}).items()}
    raise AssertionError(f"envFrom names ConfigMap {name!r}, which no file in {_rel(K8S)} defines")


def _secret_items(secret: dict[str, Any]) -> dict[str, Any]:
    return {**(secret.get("data") or {}), **(secret.get("stringData") or {})}


def _secret_keys(name: str) -> dict[str, str]:
    for secret in _k8s("Secret"):
        if secret["metadata"]["name"] == name:
            return {str(k): str(v) for k, v in _secret_items(secret).items()}
    raise AssertionError(
        f"a container reads Secret {name!r}, which no file (template) in {_rel(K8S)} defines"
    )


def k8s_containers() -> list[Container]:
    found = []
    for path, doc in _k8s_objects():
        template = _pod_template(doc)
        if template is None:
            continue
        annotations = (template.get("metadata") or {}).get("annotations") or {}
        spec = template["spec"]
        for c in [*(spec.get("initContainers") or []), *spec["containers"]]:
            image = str(c["image"])
            ours = _image_name(image) == IMAGE
            argv = _argv(c.get("command")) if "command" in c else (["agentledger"] if ours else [])
            argv += _argv(c.get("args"))
            env: dict[str, str | None] = {}
            for source in c.get("envFrom") or []:
                prefix = source.get("prefix", "")
                if "configMapRef" in source:
                    env.update(
                        {
                            prefix + k: v
                            for k, v in _configmap_data(source["configMapRef"]["name"]).items()
                        }
                    )
                if "secretRef" in source:
                    env.update(
                        {prefix + k: None for k in _secret_keys(source["secretRef"]["name"])}
                    )
            for var in c.get("env") or []:
                if "value" in var:
                    env[var["name"]] = str(var["value"])
                else:
                    ref = var.get("valueFrom") or {}
                    if "secretKeyRef" in ref:
                        keys = _secret_keys(ref["secretKeyRef"]["name"])
                        assert ref["secretKeyRef"]["key"] in keys, (
                            f"{_rel(path)}: {var['name']} reads key {ref['secretKeyRef']['key']!r} "
                            f"that the Secret template does not have"
                        )
                    if "configMapKeyRef" in ref:
                        data = _configmap_data(ref["configMapKeyRef"]["name"])
                        env[var["name"]] = data[ref["configMapKeyRef"]["key"]]
                        continue
                    env[var["name"]] = None
            named = {
                p["name"]: int(p["containerPort"]) for p in c.get("ports") or [] if "name" in p
            }
            ports = [int(p["containerPort"]) for p in c.get("ports") or []]
            probes = []
            for kind in ("readiness", "liveness", "startup"):
                get = (c.get(f"{kind}Probe") or {}).get("httpGet")
                if get:
                    port = get["port"]
                    number = named[port] if isinstance(port, str) else int(port)
                    probes.append(Probe(kind, number, str(get.get("path", "/"))))
            if annotations.get("prometheus.io/scrape") == "true":
                port = int(annotations["prometheus.io/port"])
                probes.append(
                    Probe("metrics", port, str(annotations.get("prometheus.io/path", "/metrics")))
                )
            found.append(
                Container(
                    where=f"{_rel(path)}: {doc['kind']}/{doc['metadata']['name']} container {c['name']}",
                    image=image,
                    argv=argv,
                    env=env,
                    ports=ports,
                    probes=probes,
                    replicas=int(doc.get("spec", {}).get("replicas", 1))
                    if doc["kind"] != "Job"
                    else 1,
                )
            )
    return found


def all_containers() -> list[Container]:
    return compose_containers() + k8s_containers()


def our_containers() -> list[Container]:
    return [c for c in all_containers() if c.ours]


def by_command(command: tuple[str, ...], source: list[Container] | None = None) -> list[Container]:
    return [c for c in (source if source is not None else our_containers()) if c.command == command]


def env_mappings() -> list[tuple[str, dict[str, str | None]]]:
    """Every place that names environment variables: containers, ConfigMaps, Secret templates,
    the image and .env.example."""
    found: list[tuple[str, dict[str, str | None]]] = [(c.where, c.env) for c in all_containers()]
    for cm in _k8s("ConfigMap"):
        found.append((f"ConfigMap/{cm['metadata']['name']}", dict(cm.get("data") or {})))
    for secret in _k8s("Secret"):
        found.append((f"Secret/{secret['metadata']['name']}", _secret_items(secret)))
    found.append((_rel(DOCKERFILE), dict(dockerfile_env())))
    env_file = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            env_file[key.strip()] = value.strip()
    found.append((_rel(ENV_EXAMPLE), env_file))
    return found


# --- every file parses ---------------------------------------------------------------------------


def test_the_deploy_folder_has_the_expected_files() -> None:
    for path in (
        COMPOSE,
        DOCKERFILE,
        ENV_EXAMPLE,
        DEPLOY / "README.md",
        OTEL / "config.yaml",
        OTEL / "README.md",
    ):
        assert path.is_file(), f"missing {_rel(path)}"
    assert list(K8S.glob("*.yaml")), "no Kubernetes manifests"
    assert list((CLICKHOUSE / "config.d").glob("*.xml")) and list(
        (CLICKHOUSE / "users.d").glob("*.xml")
    )


@pytest.mark.parametrize("path", YAML_FILES, ids=_rel)
def test_yaml_parses(path: Path) -> None:
    docs = _yaml_docs(path)
    assert docs, f"{_rel(path)} holds no YAML document"
    for doc in docs:
        assert isinstance(doc, dict), (
            f"{_rel(path)}: a document is a {type(doc).__name__}, not a mapping"
        )


@pytest.mark.parametrize("path", XML_FILES, ids=_rel)
def test_clickhouse_xml_parses(path: Path) -> None:
    root = _xml_root(path)
    assert root.tag == "clickhouse", (
        f"{_rel(path)}: root element <{root.tag}>, ClickHouse expects <clickhouse>"
    )


def test_kubernetes_objects_are_well_formed() -> None:
    objects = _k8s_objects()
    kinds = {doc["kind"] for _, doc in objects}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "Job"} <= kinds, kinds
    for path, doc in objects:
        assert doc.get("apiVersion") and doc.get("metadata", {}).get("name"), (
            f"{_rel(path)}: {doc.get('kind')}"
        )
        if doc["kind"] in ("Deployment", "StatefulSet"):
            selector = doc["spec"]["selector"]["matchLabels"]
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items(), (
                f"{_rel(path)}: selector does not match the pod labels"
            )
    kustomization = K8S / "kustomization.yaml"
    (kust,) = _yaml_docs(kustomization)
    for resource in kust["resources"]:
        assert (K8S / resource).is_file(), (
            f"kustomization.yaml lists {resource}, which does not exist"
        )
    assert "secret.example.yaml" not in kust["resources"], (
        "the Secret template must not be applied as is"
    )


# --- AGENTLEDGER_* names are settings --------------------------------------------------------------


def test_every_agentledger_env_var_is_a_settings_field() -> None:
    known = settings_env_names()
    unknown: dict[str, set[str]] = {}
    for path in YAML_FILES + [DOCKERFILE, ENV_EXAMPLE]:
        for name in ENV_TOKEN.findall(path.read_text(encoding="utf-8")):
            if name not in known:
                unknown.setdefault(name, set()).add(_rel(path))
    for where, env in env_mappings():
        for name in env:
            if name.startswith("AGENTLEDGER_") and name not in known:
                unknown.setdefault(name, set()).add(where)
    assert not unknown, f"AGENTLEDGER_* names that are no settings field: {unknown}"


def test_docs_name_only_real_env_vars() -> None:
    """The READMEs may also name the CLI's own variables (AGENTLEDGER_URL, AGENTLEDGER_API_KEY)."""
    cli_env = set()
    for cmd in _walk_cli(_cli_root()).values():
        for param in cmd.params:
            envvar = getattr(param, "envvar", None)
            cli_env.update([envvar] if isinstance(envvar, str) else list(envvar or []))
    known = settings_env_names() | cli_env
    for path in [p for p in DEPLOY_FILES if p.suffix == ".md"]:
        unknown = set(ENV_TOKEN.findall(path.read_text(encoding="utf-8"))) - known
        assert not unknown, f"{_rel(path)} names unknown variables {sorted(unknown)}"


def test_env_values_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every literal value would be accepted by the settings classes (types, ranges, literals)."""
    import os

    for where, env in env_mappings():
        literal = {
            k: str(v)
            for k, v in env.items()
            if k.startswith("AGENTLEDGER_") and v is not None and not COMPOSE_VAR.search(str(v))
        }
        for key in [k for k in os.environ if k.startswith("AGENTLEDGER_")]:
            monkeypatch.delenv(key)
        for key, value in literal.items():
            monkeypatch.setenv(key, value)
        for cls in SETTINGS_CLASSES:
            try:
                cls()
            except Exception as exc:  # pydantic ValidationError names the field
                raise AssertionError(f"{where}: {cls.__name__} rejects the values: {exc}") from exc


# --- CLI commands ---------------------------------------------------------------------------------


def test_every_agentledger_command_exists() -> None:
    problems = []
    for c in our_containers():
        if not c.argv or c.argv[0] != "agentledger":
            problems.append(f"{c.where}: runs {c.argv!r}, expected `agentledger <command>`")
            continue
        try:
            resolve_cli(c.argv[1:])
        except LookupError as exc:
            problems.append(f"{c.where}: {exc}")
    assert not problems, "\n".join(problems)


def test_the_image_entrypoint_is_agentledger() -> None:
    entrypoints = [i for i in _dockerfile_instructions() if i.upper().startswith("ENTRYPOINT ")]
    assert entrypoints, "deploy/Dockerfile has no ENTRYPOINT"
    assert json.loads(entrypoints[-1].split(" ", 1)[1]) == ["agentledger"]


@pytest.mark.parametrize("command", [COLLECTOR_CMD, PIPELINE_CMD, MIGRATE_CMD], ids=" ".join)
def test_compose_and_kubernetes_run_the_command(command: tuple[str, ...]) -> None:
    compose = [c for c in compose_containers() if c.ours]
    k8s = [c for c in k8s_containers() if c.ours]
    for source, name in ((compose, "docker-compose.yml"), (k8s, "kubernetes/")):
        assert [c for c in source if c.argv[1 : 1 + len(command)] == list(command)], (
            f"{name} runs no `agentledger {' '.join(command)}`"
        )
    resolve_cli(list(command))  # and the CLI has it


# --- topics -------------------------------------------------------------------------------------------


def test_settings_topic_defaults_are_the_schema_constants() -> None:
    assert set(TOPIC_ENV.values()) == set(TOPIC_NAMES)


def test_topic_env_values_are_the_constants() -> None:
    for where, env in env_mappings():
        for name, value in env.items():
            if name in TOPIC_ENV:
                assert value == TOPIC_ENV[name], (
                    f"{where}: {name}={value!r}, the code says {TOPIC_ENV[name]!r}"
                )


def test_topic_names_in_files_are_the_constants() -> None:
    """Anything in a YAML file that looks like one of our topic names is one."""
    topic_like = re.compile(r"(?<![\w.\-/])agentledger(?:\.[a-z0-9_\-]+)+")
    for path in YAML_FILES:
        for name in topic_like.findall(path.read_text(encoding="utf-8")):
            assert name in TOPIC_NAMES, (
                f"{_rel(path)} names topic {name!r}; topics are {sorted(TOPIC_NAMES)}"
            )


def test_collectors_and_consumers_share_one_topic_layout() -> None:
    for source in (compose_containers(), k8s_containers()):
        kafka_users = [c for c in source if c.ours and c.command in (COLLECTOR_CMD, PIPELINE_CMD)]
        for name in [
            *TOPIC_ENV,
            "AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS",
            "AGENTLEDGER_KAFKA_MAX_RECORD_BYTES",
        ]:
            values = {c.effective(name) for c in kafka_users}
            assert len(values) == 1, f"{name} differs between collectors and consumers: {values}"
        assert all(c.effective("AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS") for c in kafka_users)


# --- ports and probes ---------------------------------------------------------------------------------


@cache
def _collector_status(paths: tuple[str, ...]) -> dict[str, int]:
    """GET each path on the collector app (in-process, memory sink): 404 = no such route."""
    from fastapi.testclient import TestClient

    from agentledger.compose import build_edge_app
    from agentledger.pipeline.sinks import MemorySink

    app = build_edge_app(CollectorSettings(no_auth=True), MemorySink())
    with TestClient(app) as client:
        return {path: client.get(path).status_code for path in paths}


def _collector_routes() -> set[str]:
    """The collector's probe paths that exist."""
    status = _collector_status(("/healthz", "/readyz"))
    return {path for path, code in status.items() if code != 404}


def _pipeline_paths() -> tuple[str, str]:
    """(liveness path, metrics path) of the pipeline's metrics server."""
    try:
        metrics = importlib.import_module("agentledger.pipeline.consumers.metrics")
    except ImportError:
        return "/healthz", "/metrics"
    return getattr(metrics, "HEALTH_PATH", "/healthz"), getattr(metrics, "METRICS_PATH", "/metrics")


def test_collector_ports_and_probes() -> None:
    routes = _collector_routes()
    assert _collector_status(("/healthz", "/readyz")) == {"/healthz": 200, "/readyz": 200}
    collectors = by_command(COLLECTOR_CMD)
    assert (
        sum(c.replicas for c in compose_containers() if c.ours and c.command == COLLECTOR_CMD) >= 2
    )
    assert sum(c.replicas for c in k8s_containers() if c.ours and c.command == COLLECTOR_CMD) >= 2
    for c in collectors:
        assert c.effective("AGENTLEDGER_PORT") in (None, str(COLLECTOR_PORT)), (
            f"{c.where}: AGENTLEDGER_PORT"
        )
        host = c.effective("AGENTLEDGER_HOST")
        assert host in WILDCARD_HOSTS, (
            f"{c.where}: AGENTLEDGER_HOST={host!r}: unreachable from outside the container"
        )
        assert c.ports and set(c.ports) == {COLLECTOR_PORT}, f"{c.where}: container ports {c.ports}"
        assert c.probes, f"{c.where}: no health check"
        for probe in c.probes:
            assert probe.port == COLLECTOR_PORT, f"{c.where}: {probe}"
            assert probe.path in {"/healthz", "/readyz"} and probe.path in routes, (
                f"{c.where}: {probe}"
            )
    for c in by_command(COLLECTOR_CMD, k8s_containers()):
        kinds = {p.kind: p.path for p in c.probes}
        assert kinds.get("readiness") == "/readyz", f"{c.where}: readiness must be /readyz"
        assert kinds.get("liveness") == "/healthz", f"{c.where}: liveness must be /healthz"
    services = [s for s in _k8s("Service") if s["metadata"]["name"] == "agentledger-collector"]
    assert services, "no Service agentledger-collector"
    for port in services[0]["spec"]["ports"]:
        assert port["port"] == COLLECTOR_PORT
        assert port["targetPort"] in (COLLECTOR_PORT, "otlp-http")


def test_pipeline_ports_and_probes() -> None:
    health, metrics = _pipeline_paths()
    assert (health, metrics) == ("/healthz", "/metrics")
    consumers = by_command(PIPELINE_CMD)
    assert (
        sum(c.replicas for c in compose_containers() if c.ours and c.command == PIPELINE_CMD) >= 2
    )
    assert sum(c.replicas for c in k8s_containers() if c.ours and c.command == PIPELINE_CMD) >= 2
    for c in consumers:
        assert c.effective("AGENTLEDGER_METRICS_PORT") in (None, str(METRICS_PORT)), (
            f"{c.where}: metrics port"
        )
        host = c.effective("AGENTLEDGER_METRICS_HOST")
        assert host in WILDCARD_HOSTS, (
            f"{c.where}: AGENTLEDGER_METRICS_HOST={host!r}: probes could not reach it"
        )
        assert set(c.ports) <= {METRICS_PORT}, f"{c.where}: ports {c.ports}"
        assert c.probes, f"{c.where}: no health check"
        for probe in c.probes:
            assert probe.port == METRICS_PORT, f"{c.where}: {probe}"
            expected = metrics if probe.kind == "metrics" else health
            assert probe.path == expected, f"{c.where}: {probe} (expected {expected})"
    for c in by_command(PIPELINE_CMD, k8s_containers()):
        assert any(p.kind == "liveness" for p in c.probes), f"{c.where}: no liveness probe"
        assert any(p.kind == "metrics" for p in c.probes), (
            f"{c.where}: no Prometheus scrape annotations"
        )


def test_consumers_share_one_group() -> None:
    for source in (compose_containers(), k8s_containers()):
        groups = {
            c.effective("AGENTLEDGER_KAFKA_GROUP_ID") or _default(KafkaSettings, "group_id")
            for c in source
            if c.ours and c.command == PIPELINE_CMD
        }
        assert len(groups) == 1, groups


def test_the_image_exposes_the_default_ports() -> None:
    exposed = set()
    for instruction in _dockerfile_instructions():
        if instruction.upper().startswith("EXPOSE "):
            exposed.update(int(p.split("/")[0]) for p in instruction.split()[1:])
    assert {COLLECTOR_PORT, METRICS_PORT} <= exposed


# --- compose specifics --------------------------------------------------------------------------------


def test_compose_migrates_before_the_pipeline() -> None:
    services = _services()
    migrate = [n for n, s in services.items() if _argv(s.get("command")) == list(MIGRATE_CMD)]
    assert len(migrate) == 1, migrate
    assert services[migrate[0]].get("restart") == "no", "migrate is one-shot"
    for name, svc in services.items():
        if _argv(svc.get("command"))[:2] == list(PIPELINE_CMD):
            dep = (svc.get("depends_on") or {}).get(migrate[0]) or {}
            assert dep.get("condition") == "service_completed_successfully", (
                f"{name} must wait for {migrate[0]}"
            )


def test_compose_references_resolve() -> None:
    services = _services()
    for name, svc in services.items():
        for dep in svc.get("depends_on") or {}:
            assert dep in services, f"{name} depends on unknown service {dep}"
        for volume in svc.get("volumes") or []:
            source = str(volume).split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).resolve().is_file(), (
                    f"{name} mounts missing {source}"
                )
            else:
                assert source in (_compose().get("volumes") or {}), (
                    f"{name}: undeclared volume {source}"
                )
        build = svc.get("build")
        if build:
            context = (COMPOSE.parent / build["context"]).resolve()
            assert (context / build["dockerfile"]).resolve() == DOCKERFILE.resolve()


def test_compose_kafka_accepts_our_records() -> None:
    services = _services()
    (kafka_name,) = [
        n for n, s in services.items() if _image_name(str(s.get("image", ""))) == "kafka"
    ]
    kafka = _compose_env(services[kafka_name])
    assert str(services[kafka_name]["image"]).startswith("apache/kafka:")
    assert {"broker", "controller"} == set(str(kafka["KAFKA_PROCESS_ROLES"]).split(","))
    broker_max = int(str(kafka["KAFKA_MESSAGE_MAX_BYTES"]))
    assert broker_max >= 16 * 1024 * 1024
    assert int(str(kafka["KAFKA_REPLICA_FETCH_MAX_BYTES"])) >= broker_max
    listeners = str(kafka["KAFKA_ADVERTISED_LISTENERS"])
    for c in compose_containers():
        if c.ours and c.command in (COLLECTOR_CMD, PIPELINE_CMD):
            record = int(c.effective("AGENTLEDGER_KAFKA_MAX_RECORD_BYTES") or MAX_RECORD_BYTES)
            # Topics are created with max.message.bytes = max_record_bytes + 64 KiB.
            assert record + 64 * 1024 <= broker_max, c.where
            for server in str(c.effective("AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS")).split(","):
                assert f"//{server}" in listeners, (
                    f"{c.where}: {server} is not an advertised listener"
                )


# --- ClickHouse ------------------------------------------------------------------------------------------


def _clusters() -> dict[str, ET.Element]:
    return {
        cluster.tag: cluster
        for path in XML_FILES
        for servers in _xml_root(path).iter("remote_servers")
        for cluster in servers
    }


def _users() -> dict[str, ET.Element]:
    return {
        user.tag: user
        for path in XML_FILES
        for users in _xml_root(path).iter("users")
        for user in users
    }


def _profiles() -> dict[str, ET.Element]:
    return {
        p.tag: p
        for path in XML_FILES
        for profiles in _xml_root(path).iter("profiles")
        for p in profiles
    }


def _server_setting(tag: str) -> str:
    for path in sorted((CLICKHOUSE / "config.d").glob("*.xml")):
        element = _xml_root(path).find(tag)
        if element is not None and element.text:
            return element.text.strip()
    raise AssertionError(f"no <{tag}> in {_rel(CLICKHOUSE / 'config.d')}")


def test_clickhouse_cluster_name_matches_the_setting() -> None:
    clusters = _clusters()
    assert "agentledger" in clusters, f"remote_servers defines {sorted(clusters)}"
    shards = clusters["agentledger"].findall("shard")
    assert len(shards) == 2 and all(len(s.findall("replica")) == 2 for s in shards), (
        "2 shards x 2 replicas"
    )
    for shard in shards:
        assert (shard.findtext("internal_replication") or "").strip() == "true"
        for replica in shard.findall("replica"):
            assert (replica.findtext("port") or "").strip() == _server_setting("tcp_port")
    configured = {
        str(v)
        for _, env in env_mappings()
        for k, v in env.items()
        if k == "AGENTLEDGER_CLICKHOUSE_CLUSTER" and v
    }
    for name in configured:
        assert name in clusters, (
            f"AGENTLEDGER_CLICKHOUSE_CLUSTER={name!r}, remote_servers defines {sorted(clusters)}"
        )
    macros = [m for path in XML_FILES for m in _xml_root(path).iter("macros")]
    assert macros, "no <macros> example"
    for m in macros:
        assert m.find("shard") is not None and m.find("replica") is not None
        if m.findtext("cluster"):
            assert m.findtext("cluster") in clusters
    assert [z for path in XML_FILES for z in _xml_root(path).iter("zookeeper")], (
        "no <zookeeper> (Keeper) example"
    )


def test_clickhouse_users() -> None:
    users, profiles = _users(), _profiles()
    for name in ("agentledger", "analyst"):
        assert name in users, f"no ClickHouse user {name!r}"
        password = users[name].find("password")
        assert (
            password is not None and password.get("from_env") and not (password.text or "").strip()
        ), f"user {name}: the password must come from the environment (from_env), not the file"
    analyst = profiles[users["analyst"].findtext("profile", "")]
    assert analyst.findtext("readonly", "").strip() in ("1", "2"), (
        "the analyst profile must be read-only"
    )
    grants = [q.text or "" for q in users["analyst"].iter("query")]
    assert grants and all(g.strip().upper().startswith("GRANT SELECT ") for g in grants), grants


def test_clickhouse_url_points_at_the_server_and_user() -> None:
    users = _users()
    services = _services()
    (ch_name,) = [
        n
        for n, s in services.items()
        if str(s.get("image", "")).startswith("clickhouse/clickhouse-server")
    ]
    ch_env = _compose_env(services[ch_name])
    for path in XML_FILES:
        for element in _xml_root(path).iter():
            var = element.get("from_env")
            if var and path.parent == CLICKHOUSE / "users.d":
                assert var in ch_env, (
                    f"{_rel(path)} reads {var}; the compose service {ch_name} does not set it"
                )
    mounted = {
        str(v).split(":")[1]
        for v in services[ch_name].get("volumes") or []
        if str(v).startswith(".")
    }
    for path in sorted((CLICKHOUSE / "config.d").glob("*.xml")):
        assert f"/etc/clickhouse-server/config.d/{path.name}" in mounted, (
            f"compose does not mount {_rel(path)}"
        )
    for path in sorted((CLICKHOUSE / "users.d").glob("*.xml")):
        assert f"/etc/clickhouse-server/users.d/{path.name}" in mounted, (
            f"compose does not mount {_rel(path)}"
        )
    urls = 0
    for c in compose_containers():
        url = c.env.get("AGENTLEDGER_CLICKHOUSE_URL")
        if not url:
            continue
        urls += 1
        parsed = urlparse(COMPOSE_VAR.sub("secret", url))
        assert parsed.username in users, f"{c.where}: user {parsed.username!r} is not in users.d"
        assert parsed.hostname == ch_name, f"{c.where}: host {parsed.hostname!r}"
        assert str(parsed.port) == _server_setting("http_port"), f"{c.where}: port {parsed.port}"
        assert COMPOSE_VAR.search(url), (
            f"{c.where}: the ClickHouse password must come from the environment"
        )
    assert urls >= 2, "migrate and pipeline need AGENTLEDGER_CLICKHOUSE_URL"


# --- OpenTelemetry Collector ---------------------------------------------------------------------------


def _otel(name: str) -> dict[str, Any]:
    (doc,) = _yaml_docs(OTEL / name)
    return dict(doc)


def _pipeline_exporters(cfg: dict[str, Any]) -> set[str]:
    return {e for p in cfg["service"]["pipelines"].values() for e in p.get("exporters", [])}


def test_otel_collector_writes_our_topic_as_otlp_proto() -> None:
    from agentledger.schemas.topics import Headers

    cfg = _otel("config.yaml")
    kafka = {k: v for k, v in cfg["exporters"].items() if k.split("/")[0] == "kafka"}
    assert kafka, "config.yaml has no kafka exporter"
    for name, exporter in kafka.items():
        traces = exporter.get("traces") or {}
        topic = traces.get("topic", exporter.get("topic"))
        encoding = traces.get("encoding", exporter.get("encoding"))
        assert topic == topics.SPANS_TOPIC, f"exporter {name} writes {topic!r}"
        assert encoding == "otlp_proto", f"exporter {name} encodes {encoding!r}"
        assert exporter.get("partition_traces_by_id") is True, "records must be keyed by trace id"
        assert name in _pipeline_exporters(cfg)
        producer = exporter.get("producer") or {}
        assert int(producer.get("max_message_bytes", 1_000_000)) <= MAX_RECORD_BYTES, (
            "records larger than AGENTLEDGER_KAFKA_MAX_RECORD_BYTES are refused by the topic/consumer"
        )
        assert producer.get("required_acks") in (-1, "all"), "acks=all, as our collector"
        listed = exporter.get("record_headers") or []
        assert isinstance(listed, list), "record_headers: a list of {name, value} (v0.165+)"
        headers = {h["name"]: h["value"] for h in listed}
        assert Headers.TENANT in headers, f"exporter {name} sets no {Headers.TENANT} header"
        if Headers.SCHEMA in headers:
            assert str(headers[Headers.SCHEMA]) == topics.SCHEMA_VERSION
    for brokers in (e.get("brokers", []) for e in kafka.values()):
        kafka_services = {
            n for n, s in _services().items() if _image_name(str(s.get("image", ""))) == "kafka"
        }
        assert all(b.split(":")[0] in kafka_services for b in brokers), brokers
    otlp = cfg["receivers"]["otlp"]["protocols"]
    assert otlp["grpc"]["endpoint"].endswith(":4317") and otlp["http"]["endpoint"].endswith(":4318")
    text = (OTEL / "config.yaml").read_text(encoding="utf-8")
    assert "otlp_http" in text and f":{COLLECTOR_PORT}" in text and "Bearer" in text, (
        "variant B comment"
    )


def test_otel_collector_in_front_of_ours() -> None:
    cfg = _otel("config-in-front.yaml")
    exporters = {k: v for k, v in cfg["exporters"].items() if k.split("/")[0] == "otlp_http"}
    assert exporters and set(exporters) <= _pipeline_exporters(cfg)
    for exporter in exporters.values():
        endpoint = urlparse(exporter["endpoint"])
        assert endpoint.port == COLLECTOR_PORT and endpoint.path in ("", "/")
        assert str(exporter["headers"]["Authorization"]).startswith("Bearer ")


def test_otel_readme_states_the_tenant_rule() -> None:
    from agentledger.schemas.topics import Headers

    text = (OTEL / "README.md").read_text(encoding="utf-8")
    assert Headers.TENANT in text and "AGENTLEDGER_DEFAULT_TENANT" in text and "otlp_proto" in text


# --- the image ----------------------------------------------------------------------------------------------


def _package_dirs() -> set[str]:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = re.search(r"^\[tool\.setuptools\.package-dir\]\n(.*?)(?=^\[)", text, re.S | re.M)
    assert section, "pyproject.toml has no [tool.setuptools.package-dir]"
    return {m.group(1) for m in re.finditer(r'^\s*"[^"]+"\s*=\s*"([^"]+)"', section.group(1), re.M)}


def test_dockerfile() -> None:
    instructions = _dockerfile_instructions()
    args = {}
    for i in instructions:
        if i.upper().startswith("ARG ") and "=" in i:
            key, _, value = i[4:].partition("=")
            args[key.strip()] = value.strip()
    bases = [
        re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], i.split()[1])
        for i in instructions
        if i.upper().startswith("FROM ")
    ]
    assert bases and bases[-1] == "python:3.11-slim", bases
    installs = " ".join(i for i in instructions if "pip " in i)
    extras = re.findall(r"\[([a-z,]+)\]", installs)
    assert extras and all(set(e.split(",")) == {"server", "kafka", "clickhouse"} for e in extras), (
        extras
    )
    users = [i.split()[1] for i in instructions if i.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root"), (
        "the image must run as a non-root user"
    )
    copied = " ".join(i for i in instructions if i.upper().startswith("COPY "))
    for folder in _package_dirs() | {"pyproject.toml", "README.md"}:
        copies = re.search(rf"(?<![\w/]){re.escape(folder)}/?(\s|$)", copied)
        assert copies, f"the Dockerfile does not copy {folder}"
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    for folder in _package_dirs():
        assert f"!{folder}/" in ignore, f"Dockerfile.dockerignore excludes {folder}/"
