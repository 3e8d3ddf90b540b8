"""Static checks of the deployment files: deploy/compose.yaml, deploy/Dockerfile and deploy/k8s/.

No network and no Docker or cluster: the files are parsed with PyYAML and checked with JSON schemas
written here plus cross-references (selectors against pod labels, probe and Service ports against
container ports, service names against the folders under services/). Each checker returns a list of
problems; the tests at the bottom feed broken copies to the checkers to prove that they can fail.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"

# The services, their HTTP ports and the prefix of their settings (YARDSTICK_<PREFIX>_DATABASE_URL).
SERVICES = {
    "feedback-intake": (8001, "INTAKE"),
    "target-tracker": (8002, "TARGETS"),
    "scoring": (8003, "SCORING"),
    "notices": (8004, "NOTICES"),
}
DATABASES = {
    "yardstick_intake",
    "yardstick_targets",
    "yardstick_scoring",
    "yardstick_notices",
    "yardstick_auth",
}

Doc = dict[str, Any]


def _service_folders() -> set[str]:
    return {p.name for p in (REPO / "services").iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}


def _schema_problems(schema: Doc, instance: Any, where: str) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{where}: {'/'.join(map(str, err.absolute_path)) or '<root>'}: {err.message}"
        for err in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    ]


# --------------------------------------------------------------------------------------- compose

COMPOSE_SCHEMA: Doc = {
    "type": "object",
    "required": ["services"],
    "properties": {
        "name": {"type": "string"},
        "services": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "anyOf": [{"required": ["image"]}, {"required": ["build"]}],
                "required": ["environment"],
                "properties": {
                    "image": {"type": "string", "minLength": 1},
                    "build": {
                        "type": "object",
                        "required": ["context", "dockerfile"],
                        "properties": {"context": {"type": "string"}, "dockerfile": {"type": "string"}},
                    },
                    "command": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    "environment": {
                        "type": "object",
                        "additionalProperties": {"type": ["string", "integer", "boolean"]},
                    },
                    "ports": {
                        "type": "array",
                        "items": {"type": "string", "pattern": r"^(127\.0\.0\.1:)?\d{2,5}:\d{2,5}$"},
                    },
                    "depends_on": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "required": ["condition"],
                            "properties": {"condition": {"enum": ["service_healthy", "service_started"]}},
                        },
                    },
                    "healthcheck": {
                        "type": "object",
                        "required": ["test"],
                        "properties": {"test": {"type": "array", "items": {"type": "string"}, "minItems": 2}},
                    },
                    "volumes": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
        "volumes": {"type": "object"},
    },
}

# An application service additionally needs all of these.
COMPOSE_APP_SCHEMA: Doc = {
    "type": "object",
    "required": ["build", "image", "command", "environment", "ports", "healthcheck", "depends_on"],
}


def load_compose() -> Doc:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def app_services(compose: Doc) -> dict[str, Doc]:
    """The compose services that run `yardstick serve <service>`."""
    return {
        name: svc
        for name, svc in compose.get("services", {}).items()
        if list(svc.get("command", []))[:2] == ["yardstick", "serve"]
    }


def compose_problems(compose: Doc) -> list[str]:
    problems = _schema_problems(COMPOSE_SCHEMA, compose, "compose")
    if problems:
        return problems
    services = compose["services"]
    apps = app_services(compose)
    if set(apps) != set(SERVICES):
        problems.append(f"compose: application services {sorted(apps)} != {sorted(SERVICES)}")
    folders = _service_folders()
    for name, svc in apps.items():
        where = f"compose service {name}"
        problems += _schema_problems(COMPOSE_APP_SCHEMA, svc, where)
        if name not in folders:
            problems.append(f"{where}: no folder services/{name}")
        if svc.get("command") != ["yardstick", "serve", name]:
            problems.append(f"{where}: command {svc.get('command')} does not serve {name}")
        if name not in SERVICES:
            continue
        port, prefix = SERVICES[name]
        if svc.get("ports") != [f"{port}:{port}"]:
            problems.append(f"{where}: ports {svc.get('ports')} != ['{port}:{port}']")
        env = svc.get("environment", {})
        expected = {
            "YARDSTICK_BUS": "kafka",
            "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
            "YARDSTICK_CITY": "/app/deploy/cities/hangzhou.yaml",
            f"YARDSTICK_{prefix}_HOST": "0.0.0.0",
            f"YARDSTICK_{prefix}_PORT": port,
        }
        for key, value in expected.items():
            if env.get(key) != value:
                problems.append(f"{where}: {key}={env.get(key)!r}, expected {value!r}")
        if not str(env.get("YARDSTICK_AUTH_SECRET", "")).startswith("${YARDSTICK_AUTH_SECRET"):
            problems.append(f"{where}: YARDSTICK_AUTH_SECRET must come from the environment")
        for var in (f"YARDSTICK_{prefix}_DATABASE_URL", "YARDSTICK_AUTH_DATABASE_URL"):
            url = str(env.get(var, ""))
            m = re.fullmatch(r"postgresql\+asyncpg://[^:@/]+:[^@/]+@postgres:5432/(\w+)", url)
            if not m:
                problems.append(f"{where}: {var}={url!r} is not a postgres URL to service 'postgres'")
            elif m.group(1) not in DATABASES:
                problems.append(f"{where}: {var} names unknown database {m.group(1)}")
        test = " ".join(svc.get("healthcheck", {}).get("test", []))
        if f"127.0.0.1:{port}/readyz" not in test:
            problems.append(f"{where}: healthcheck does not probe /readyz on port {port}: {test!r}")
        for dep in svc.get("depends_on", {}):
            if dep not in services:
                problems.append(f"{where}: depends on unknown service {dep}")
        build = svc.get("build", {})
        context = (DEPLOY / build.get("context", "")).resolve()
        if context != REPO or not (context / build.get("dockerfile", "")).is_file():
            problems.append(f"{where}: build {build} does not point at the repo root and deploy/Dockerfile")
    for required in ("kafka", "postgres"):
        if required not in services:
            problems.append(f"compose: no {required} service")
    for vol in services.get("postgres", {}).get("volumes", []):
        source = vol.split(":", 1)[0]
        if source.startswith(".") and not (DEPLOY / source).is_file():
            problems.append(f"compose postgres: mounted file {source} does not exist")
    return problems


def test_compose_is_valid() -> None:
    assert compose_problems(load_compose()) == []


def test_compose_postgres_init_creates_every_database() -> None:
    compose = load_compose()
    mounts = [v for v in compose["services"]["postgres"]["volumes"] if "docker-entrypoint-initdb.d" in v]
    assert mounts == ["./postgres-init.sql:/docker-entrypoint-initdb.d/10-databases.sql:ro"]
    sql = (DEPLOY / "postgres-init.sql").read_text()
    assert set(re.findall(r"'(yardstick_\w+)'", sql)) == DATABASES
    assert "\\gexec" in sql


def test_compose_kafka_is_single_node_kraft() -> None:
    env = load_compose()["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    # A KRaft cluster id is 16 bytes in URL-safe base64 without padding.
    import base64

    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16


def test_dockerfile_copies_only_existing_paths() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    assert "pip install -c constraints.txt ." in dockerfile
    for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.M):
        *sources, _dest = line.split()
        for source in sources:
            assert (REPO / source).exists(), f"Dockerfile copies {source}, which is not in the repo"


def test_city_profile_exists() -> None:
    city = load_compose()["services"]["scoring"]["environment"]["YARDSTICK_CITY"]
    assert city.startswith("/app/")
    assert (REPO / city.removeprefix("/app/")).is_file(), f"{city} is not in the repo"


# ------------------------------------------------------------------------------------ kubernetes

_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
_LABELS = {"type": "object", "minProperties": 1, "additionalProperties": {"type": "string"}}
_PROBE = {
    "type": "object",
    "required": ["httpGet"],
    "properties": {
        "httpGet": {
            "type": "object",
            "required": ["path", "port"],
            "properties": {"path": {"type": "string"}, "port": {"type": ["integer", "string"]}},
        }
    },
}
_ENV_VAR = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "value": {"type": "string"}},
    "oneOf": [
        {"required": ["value"]},
        {
            "required": ["valueFrom"],
            "properties": {
                "valueFrom": {
                    "type": "object",
                    "properties": {
                        "secretKeyRef": {"type": "object", "required": ["name", "key"]},
                        "configMapKeyRef": {"type": "object", "required": ["name", "key"]},
                    },
                }
            },
        },
    ],
}
K8S_SCHEMAS: dict[str, Doc] = {
    "Deployment": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "apps/v1"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["replicas", "selector", "template"],
                "properties": {
                    "replicas": {"type": "integer", "minimum": 1},
                    "selector": {
                        "type": "object",
                        "required": ["matchLabels"],
                        "properties": {"matchLabels": _LABELS},
                    },
                    "template": {
                        "type": "object",
                        "required": ["metadata", "spec"],
                        "properties": {
                            "metadata": {
                                "type": "object",
                                "required": ["labels"],
                                "properties": {"labels": _LABELS},
                            },
                            "spec": {
                                "type": "object",
                                "required": ["containers"],
                                "properties": {
                                    "containers": {
                                        "type": "array",
                                        "minItems": 1,
                                        "items": {
                                            "type": "object",
                                            "required": [
                                                "name",
                                                "image",
                                                "ports",
                                                "readinessProbe",
                                                "livenessProbe",
                                            ],
                                            "properties": {
                                                "image": {"type": "string", "minLength": 1},
                                                "command": {"type": "array", "items": {"type": "string"}},
                                                "ports": {
                                                    "type": "array",
                                                    "minItems": 1,
                                                    "items": {
                                                        "type": "object",
                                                        "required": ["containerPort"],
                                                        "properties": {
                                                            "containerPort": {"type": "integer"},
                                                            "name": {"type": "string"},
                                                        },
                                                    },
                                                },
                                                "env": {"type": "array", "items": _ENV_VAR},
                                                "envFrom": {"type": "array"},
                                                "readinessProbe": _PROBE,
                                                "livenessProbe": _PROBE,
                                            },
                                        },
                                    }
                                },
                            },
                        },
                    },
                },
            },
        },
    },
    "Service": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "v1"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["selector", "ports"],
                "properties": {
                    "selector": _LABELS,
                    "ports": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["port", "targetPort"],
                            "properties": {
                                "port": {"type": "integer"},
                                "targetPort": {"type": ["integer", "string"]},
                            },
                        },
                    },
                },
            },
        },
    },
    "ConfigMap": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "data"],
        "properties": {
            "apiVersion": {"const": "v1"},
            "metadata": _METADATA,
            "data": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "Namespace": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata"],
        "properties": {"apiVersion": {"const": "v1"}, "metadata": _METADATA},
    },
}


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def load_k8s() -> list[tuple[str, Doc]]:
    docs: list[tuple[str, Doc]] = []
    for path in k8s_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path.name, doc))
    return docs


def _resolve_port(container: Doc, port: int | str) -> int | None:
    for p in container.get("ports", []):
        if port in (p.get("containerPort"), p.get("name")):
            return int(p["containerPort"])
    return None


def k8s_problems(docs: list[tuple[str, Doc]]) -> list[str]:
    problems: list[str] = []
    for file, doc in docs:
        kind = doc.get("kind")
        if kind not in K8S_SCHEMAS:
            problems.append(f"{file}: unexpected kind {kind!r}")
            continue
        problems += _schema_problems(
            K8S_SCHEMAS[kind], doc, f"{file} {kind}/{doc.get('metadata', {}).get('name')}"
        )
    if problems:
        return problems

    deployments = {d["metadata"]["name"]: d for _, d in docs if d["kind"] == "Deployment"}
    services = {d["metadata"]["name"]: d for _, d in docs if d["kind"] == "Service"}
    config_maps = {d["metadata"]["name"]: d for _, d in docs if d["kind"] == "ConfigMap"}
    folders = _service_folders()

    for kind, objs in (("Deployment", deployments), ("Service", services)):
        if set(objs) != set(SERVICES):
            problems.append(f"k8s: {kind}s {sorted(objs)} != {sorted(SERVICES)}")
        for name in objs:
            if name not in folders:
                problems.append(f"k8s: {kind} {name} has no folder services/{name}")

    for name, dep in deployments.items():
        where = f"Deployment {name}"
        spec = dep["spec"]
        pod_labels = spec["template"]["metadata"]["labels"]
        selector = spec["selector"]["matchLabels"]
        if not selector.items() <= pod_labels.items():
            problems.append(f"{where}: selector {selector} does not match pod labels {pod_labels}")
        if spec["replicas"] != 2:
            problems.append(f"{where}: replicas {spec['replicas']} != 2")
        container = spec["template"]["spec"]["containers"][0]
        if container.get("command") != ["yardstick", "serve", name]:
            problems.append(f"{where}: command {container.get('command')} does not serve {name}")
        port, prefix = SERVICES.get(name, (None, None))
        if [p["containerPort"] for p in container["ports"]] != [port]:
            problems.append(f"{where}: container ports {container['ports']} != [{port}]")
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            get = container[probe]["httpGet"]
            if get["path"] != path:
                problems.append(f"{where}: {probe} path {get['path']} != {path}")
            if _resolve_port(container, get["port"]) != port:
                problems.append(f"{where}: {probe} port {get['port']} is not the container port {port}")
        env = {e["name"]: e for e in container.get("env", [])}
        for var in (
            f"YARDSTICK_{prefix}_DATABASE_URL",
            "YARDSTICK_AUTH_DATABASE_URL",
            "YARDSTICK_AUTH_SECRET",
        ):
            ref = env.get(var, {}).get("valueFrom", {}).get("secretKeyRef", {})
            if ref != {"name": "yardstick-secrets", "key": var}:
                problems.append(f"{where}: {var} does not come from Secret yardstick-secrets")
        if env.get(f"YARDSTICK_{prefix}_HOST", {}).get("value") != "0.0.0.0":
            problems.append(f"{where}: YARDSTICK_{prefix}_HOST must be 0.0.0.0")
        refs = [e["configMapRef"]["name"] for e in container.get("envFrom", []) if "configMapRef" in e]
        if not refs:
            problems.append(f"{where}: takes no settings from a ConfigMap")
        for ref in refs:
            if ref not in config_maps:
                problems.append(f"{where}: envFrom names missing ConfigMap {ref}")
            elif "YARDSTICK_CITY" not in config_maps[ref]["data"]:
                problems.append(f"{where}: ConfigMap {ref} has no YARDSTICK_CITY")

    for name, svc in services.items():
        where = f"Service {name}"
        dep = deployments.get(name)
        if dep is None:
            problems.append(f"{where}: no Deployment of the same name")
            continue
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        if not svc["spec"]["selector"].items() <= pod_labels.items():
            problems.append(
                f"{where}: selector {svc['spec']['selector']} selects no pod of Deployment {name}"
            )
        container = dep["spec"]["template"]["spec"]["containers"][0]
        port = SERVICES.get(name, (None, None))[0]
        for p in svc["spec"]["ports"]:
            if p["port"] != port:
                problems.append(f"{where}: port {p['port']} != {port}")
            if _resolve_port(container, p["targetPort"]) != port:
                problems.append(f"{where}: targetPort {p['targetPort']} is not the container port {port}")
    return problems


def test_k8s_manifests_are_valid() -> None:
    docs = load_k8s()
    assert docs, "no manifests in deploy/k8s"
    assert k8s_problems(docs) == []


def test_one_file_per_service() -> None:
    for name in SERVICES:
        kinds = sorted(d["kind"] for _, d in yaml_docs(K8S / f"{name}.yaml"))
        assert kinds == ["Deployment", "Service"], name


def yaml_docs(path: Path) -> list[tuple[str, Doc]]:
    return [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d is not None]


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(p.name for p in k8s_files())


def test_k8s_against_the_kubernetes_openapi_schemas() -> None:
    """Strict validation against the bundled Kubernetes schemas (no network), if the package is there."""
    kv = pytest.importorskip("kubernetes_validate")
    errors = []
    for file, doc in load_k8s():
        try:
            kv.validate(doc, kv.latest_version(), strict=True)
        except kv.ValidationError as exc:
            errors.append(f"{file} {doc['kind']}/{doc['metadata']['name']}: {str(exc).splitlines()[0]}")
    assert errors == []


def test_kustomize_builds() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    out = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    built = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert {d["metadata"].get("namespace") for d in built if d["kind"] != "Namespace"} == {"yardstick"}
    assert k8s_problems([("kustomize", d) for d in built]) == []


# ------------------------------------------------------------------- the checkers can fail


def _deployment(docs: list[tuple[str, Doc]], name: str) -> Doc:
    return next(d for _, d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name)


def _service(docs: list[tuple[str, Doc]], name: str) -> Doc:
    return next(d for _, d in docs if d["kind"] == "Service" and d["metadata"]["name"] == name)


def test_k8s_checker_catches_selector_label_mismatch() -> None:
    docs = copy.deepcopy(load_k8s())
    _deployment(docs, "scoring")["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] = "scorng"
    assert any("selector" in p and "scoring" in p for p in k8s_problems(docs))


def test_k8s_checker_catches_service_selecting_nothing() -> None:
    docs = copy.deepcopy(load_k8s())
    _service(docs, "notices")["spec"]["selector"] = {"app.kubernetes.io/name": "notice"}
    assert any(p.startswith("Service notices: selector") for p in k8s_problems(docs))


def test_k8s_checker_catches_wrong_target_port_and_probe() -> None:
    docs = copy.deepcopy(load_k8s())
    _service(docs, "target-tracker")["spec"]["ports"][0]["targetPort"] = 8003
    container = _deployment(docs, "feedback-intake")["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["httpGet"]["path"] = "/healthz"
    problems = k8s_problems(docs)
    assert any("targetPort 8003" in p for p in problems)
    assert any("readinessProbe path /healthz" in p for p in problems)


def test_k8s_checker_catches_missing_image_and_unknown_service() -> None:
    docs = copy.deepcopy(load_k8s())
    del _deployment(docs, "notices")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert any("'image' is a required property" in p for p in k8s_problems(docs))
    docs = copy.deepcopy(load_k8s())
    _deployment(docs, "notices")["metadata"]["name"] = "billing"
    assert any("billing" in p for p in k8s_problems(docs))


def test_compose_checker_catches_mistakes() -> None:
    compose = copy.deepcopy(load_compose())
    compose["services"]["scoring"]["ports"] = ["8004:8003"]
    compose["services"]["notices"]["environment"].pop("YARDSTICK_NOTICES_DATABASE_URL")
    del compose["services"]["target-tracker"]["healthcheck"]
    problems = compose_problems(compose)
    assert any("compose service scoring: ports" in p for p in problems)
    assert any("YARDSTICK_NOTICES_DATABASE_URL" in p for p in problems)
    assert any("target-tracker" in p and "healthcheck" in p for p in problems)
    compose = copy.deepcopy(load_compose())
    del compose["services"]["kafka"]["image"]
    assert any("kafka" in p for p in compose_problems(compose))
