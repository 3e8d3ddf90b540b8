"""Static checks of the deployment files: deploy/compose.yaml, deploy/Dockerfile and deploy/k8s/.

No Docker engine and no cluster here: the compose file is parsed with PyYAML and checked with JSON schemas
written here plus cross-references (dependencies, migration one-shot, database URLs); the Kubernetes
manifests are validated against the Kubernetes OpenAPI schemas (kubernetes-validate, strict) and
cross-checked (selectors against pod labels, probe and Service ports, every secretKeyRef against the keys
the Secret defines, HorizontalPodAutoscalers against Deployments, the migration Job against the
Deployments' image and settings), both as files and as `kubectl kustomize` builds them. Each checker
returns a list of problems; the tests at the bottom feed broken copies to the checkers to prove that
they can fail.
"""

from __future__ import annotations

import base64
import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
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
# Topics have this many partitions (settings.topic_partitions, KAFKA_NUM_PARTITIONS): a consumer group
# has no use for more members.
PARTITIONS = 6
# The services that scale out (a HorizontalPodAutoscaler each), and those whose work is all in a
# consumer group, so that more than PARTITIONS pods would idle. target-tracker consumes no topic and
# serves a few coordinators: two fixed replicas (see deploy/k8s/target-tracker.yaml).
AUTOSCALED = {"feedback-intake", "scoring", "notices"}
CONSUMER_BOUND = {"scoring", "notices"}
MIGRATE_COMMAND = ["yardstick", "migrate", "all"]
SECRET_NAME = "yardstick-secrets"

Doc = dict[str, Any]


def _service_folders() -> set[str]:
    return {p.name for p in (REPO / "services").iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}


def _schema_problems(schema: Doc, instance: Any, where: str) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{where}: {'/'.join(map(str, err.absolute_path)) or '<root>'}: {err.message}"
        for err in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    ]


def _database_urls(env: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in env.items() if re.fullmatch(r"YARDSTICK_\w+_DATABASE_URL", k)}


# --------------------------------------------------------------------------------------- compose

_HEALTHCHECK = {
    "type": "object",
    "required": ["test"],
    "properties": {"test": {"type": "array", "items": {"type": "string"}, "minItems": 2}},
}
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
                            "properties": {
                                "condition": {
                                    "enum": [
                                        "service_healthy",
                                        "service_started",
                                        "service_completed_successfully",
                                    ]
                                }
                            },
                        },
                    },
                    "healthcheck": _HEALTHCHECK,
                    "restart": {"enum": ["no", "always", "on-failure", "unless-stopped"]},
                    "read_only": {"type": "boolean"},
                    "tmpfs": {"type": "array", "items": {"type": "string"}},
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
# What every application service waits for before it starts.
APP_DEPENDS_ON = {
    "kafka": "service_healthy",
    "postgres": "service_healthy",
    "migrate": "service_completed_successfully",
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
    app_database_urls: dict[str, str] = {}
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
        for key, value in env.items():
            if re.search(r"(SECRET|_KEY)", key) and not str(value).startswith("${"):
                problems.append(f"{where}: {key} has a value in the file; it must come from the environment")
        own = f"YARDSTICK_{prefix}_DATABASE_URL"
        for var in (own, "YARDSTICK_AUTH_DATABASE_URL"):
            url = str(env.get(var, ""))
            m = re.fullmatch(r"postgresql\+asyncpg://[^:@/]+:[^@/]+@postgres:5432/(\w+)", url)
            if not m:
                problems.append(f"{where}: {var}={url!r} is not a postgres URL to service 'postgres'")
            elif m.group(1) not in DATABASES:
                problems.append(f"{where}: {var} names unknown database {m.group(1)}")
        app_database_urls[own] = str(env.get(own, ""))
        test = " ".join(svc.get("healthcheck", {}).get("test", []))
        if f"127.0.0.1:{port}/readyz" not in test:
            problems.append(f"{where}: healthcheck does not probe /readyz on port {port}: {test!r}")
        depends = {dep: spec.get("condition") for dep, spec in svc.get("depends_on", {}).items()}
        for dep in depends:
            if dep not in services:
                problems.append(f"{where}: depends on unknown service {dep}")
        for dep, condition in APP_DEPENDS_ON.items():
            if depends.get(dep) != condition:
                problems.append(f"{where}: must depend on {dep} with {condition}, not {depends.get(dep)}")
        build = svc.get("build", {})
        context = (DEPLOY / build.get("context", "")).resolve()
        if context != REPO or not (context / build.get("dockerfile", "")).is_file():
            problems.append(f"{where}: build {build} does not point at the repo root and deploy/Dockerfile")
    for required in ("kafka", "postgres", "migrate"):
        if required not in services:
            problems.append(f"compose: no {required} service")
    for infra in ("kafka", "postgres"):
        if infra in services and "healthcheck" not in services[infra]:
            problems.append(f"compose {infra}: no healthcheck (the services wait for it to be healthy)")
    problems += _migrate_problems(services, apps, app_database_urls)
    for vol in services.get("postgres", {}).get("volumes", []):
        source = vol.split(":", 1)[0]
        if source.startswith(".") and not (DEPLOY / source).is_file():
            problems.append(f"compose postgres: mounted file {source} does not exist")
    return problems


def _migrate_problems(services: Doc, apps: dict[str, Doc], app_database_urls: dict[str, str]) -> list[str]:
    """The one-shot that migrates every database before the services start: same image, same URLs."""
    migrate = services.get("migrate")
    if migrate is None:
        return []
    where = "compose service migrate"
    problems = []
    if migrate.get("command") != MIGRATE_COMMAND:
        problems.append(f"{where}: command {migrate.get('command')} != {MIGRATE_COMMAND}")
    if str(migrate.get("restart", "no")) != "no":
        problems.append(f"{where}: a one-shot must not restart (restart: {migrate.get('restart')})")
    for name, svc in apps.items():
        for key in ("image", "build"):
            if migrate.get(key) != svc.get(key):
                problems.append(f"{where}: {key} {migrate.get(key)} differs from {name}'s {svc.get(key)}")
    urls = _database_urls(migrate.get("environment", {}))
    if urls != app_database_urls:
        problems.append(f"{where}: database URLs {urls} are not the services' {app_database_urls}")
    if migrate.get("depends_on", {}).get("postgres", {}).get("condition") != "service_healthy":
        problems.append(f"{where}: must wait for postgres to be healthy")
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
    assert env["KAFKA_NUM_PARTITIONS"] == PARTITIONS
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    # A KRaft cluster id is 16 bytes in URL-safe base64 without padding.
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16


def test_city_profile_exists() -> None:
    city = load_compose()["services"]["scoring"]["environment"]["YARDSTICK_CITY"]
    assert city.startswith("/app/")
    assert (REPO / city.removeprefix("/app/")).is_file(), f"{city} is not in the repo"


# ------------------------------------------------------------------------------------ Dockerfile


def dockerfile_stages(text: str) -> list[tuple[str, str, str]]:
    """(base image, stage name, body) per FROM."""
    parts = re.split(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?\s*$", text, flags=re.M | re.I)
    return [(parts[i], parts[i + 1] or "", parts[i + 2]) for i in range(1, len(parts), 3)]


def dockerfile_problems(text: str) -> list[str]:
    problems = []
    stages = dockerfile_stages(text)
    names = [name for _, name, _ in stages]
    if names != ["build", "runtime"]:
        return [f"Dockerfile: stages {names} != ['build', 'runtime'] (the last one is the image)"]
    (build_base, _, build), (runtime_base, _, runtime) = stages
    for base in (build_base, runtime_base):
        if not re.fullmatch(r"python:3\.11-slim", base):
            problems.append(f"Dockerfile: base image {base} is not python:3.11-slim")
    # The lock file decides every version; editable, so services/<service>/migrations stay reachable.
    if not re.search(r"^RUN pip install -c constraints\.txt -e \.", build, re.M):
        problems.append("Dockerfile: build stage does not run `pip install -c constraints.txt -e .`")
    if re.search(r"pip install", runtime):
        problems.append("Dockerfile: the runtime stage installs packages (it must only copy the built venv)")
    if "COPY --from=build /opt/venv /opt/venv" not in runtime:
        problems.append("Dockerfile: the runtime stage does not copy the build stage's virtualenv")
    if not re.search(r"PIP_NO_INDEX=1", runtime):
        problems.append("Dockerfile: the runtime stage leaves pip pointed at an index")
    users = re.findall(r"^USER\s+(\S+)", runtime, re.M)
    if not users or not re.fullmatch(r"[1-9]\d{3,}(:[1-9]\d{3,})?", users[-1]):
        problems.append(f"Dockerfile: final USER {users[-1:]} is not a numeric non-root uid")
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):
        *sources, _dest = line.split()
        for source in sources:
            if not (REPO / source).exists():
                problems.append(f"Dockerfile: copies {source}, which is not in the repo")
    return problems


def test_dockerfile_is_valid() -> None:
    assert dockerfile_problems((DEPLOY / "Dockerfile").read_text()) == []


def test_dockerfile_copies_only_existing_paths() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    copied = re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.M)
    assert copied
    for line in copied:
        *sources, _dest = line.split()
        for source in sources:
            assert (REPO / source).exists(), f"Dockerfile copies {source}, which is not in the repo"


def test_dockerignore_keeps_local_state_out_but_not_what_the_image_needs() -> None:
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for local in ("**/.venv", "**/.cache", "**/.data", "**/.git"):
        assert local in ignored
    for needed in ("shared", "services", "deploy", "deploy/cities", "constraints.txt", "pyproject.toml"):
        assert needed not in ignored


def test_dockerfile_checker_catches_mistakes() -> None:
    good = (DEPLOY / "Dockerfile").read_text()
    assert any("numeric non-root" in p for p in dockerfile_problems(good.replace("USER 10001:10001", "USER root")))
    assert any("constraints.txt" in p for p in dockerfile_problems(good.replace("-c constraints.txt ", "")))
    assert any("not in the repo" in p for p in dockerfile_problems(good.replace("deploy/cities", "deploy/towns")))
    single = good.replace("FROM python:3.11-slim AS runtime", "")
    assert any("stages" in p for p in dockerfile_problems(single))


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
_QUANTITIES = {"type": "object", "required": ["cpu", "memory"]}
# Every container: requests (the scheduler and the autoscaler work from them) and limits.
_RESOURCES = {
    "type": "object",
    "required": ["requests", "limits"],
    "properties": {"requests": _QUANTITIES, "limits": _QUANTITIES},
}
_CONTAINER_SECURITY = {
    "type": "object",
    "required": ["allowPrivilegeEscalation", "readOnlyRootFilesystem"],
    "properties": {"allowPrivilegeEscalation": {"const": False}, "readOnlyRootFilesystem": {"const": True}},
}
_POD_SECURITY = {
    "type": "object",
    "required": ["runAsNonRoot", "runAsUser"],
    "properties": {"runAsNonRoot": {"const": True}, "runAsUser": {"type": "integer", "minimum": 1000}},
}


def _pod_template(container_required: list[str]) -> Doc:
    return {
        "type": "object",
        "required": ["metadata", "spec"],
        "properties": {
            "metadata": {"type": "object", "required": ["labels"], "properties": {"labels": _LABELS}},
            "spec": {
                "type": "object",
                "required": ["containers", "securityContext"],
                "properties": {
                    "securityContext": _POD_SECURITY,
                    "containers": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["name", "image", "command", "resources", "securityContext",
                                         *container_required],
                            "properties": {
                                "image": {"type": "string", "minLength": 1},
                                "command": {"type": "array", "items": {"type": "string"}},
                                "ports": {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": {"type": "object", "required": ["containerPort"]},
                                },
                                "readinessProbe": _PROBE,
                                "livenessProbe": _PROBE,
                                "startupProbe": _PROBE,
                                "resources": _RESOURCES,
                                "securityContext": _CONTAINER_SECURITY,
                            },
                        },
                    },
                },
            },
        },
    }


_KIND = {"required": ["apiVersion", "kind", "metadata"], "type": "object"}
K8S_SCHEMAS: dict[str, Doc] = {
    "Deployment": {
        **_KIND,
        "properties": {
            "apiVersion": {"const": "apps/v1"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["selector", "template"],
                "properties": {
                    "replicas": {"type": "integer", "minimum": 2},
                    "selector": {"type": "object", "required": ["matchLabels"], "properties": {"matchLabels": _LABELS}},
                    "template": _pod_template(["ports", "readinessProbe", "livenessProbe", "startupProbe"]),
                },
            },
        },
    },
    "Job": {
        **_KIND,
        "properties": {
            "apiVersion": {"const": "batch/v1"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["template", "backoffLimit"],
                "properties": {"template": _pod_template([])},
            },
        },
    },
    "Service": {
        **_KIND,
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
                        "items": {"type": "object", "required": ["port", "targetPort"]},
                    },
                },
            },
        },
    },
    "HorizontalPodAutoscaler": {
        **_KIND,
        "properties": {
            "apiVersion": {"const": "autoscaling/v2"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["scaleTargetRef", "minReplicas", "maxReplicas", "metrics"],
                "properties": {"minReplicas": {"type": "integer", "minimum": 2}},
            },
        },
    },
    "PodDisruptionBudget": {
        **_KIND,
        "properties": {
            "apiVersion": {"const": "policy/v1"},
            "metadata": _METADATA,
            "spec": {"type": "object", "required": ["selector"]},
        },
    },
    "Secret": {**_KIND, "properties": {"apiVersion": {"const": "v1"}, "metadata": _METADATA}},
    "ConfigMap": {
        **_KIND,
        "required": ["apiVersion", "kind", "metadata", "data"],
        "properties": {
            "apiVersion": {"const": "v1"},
            "metadata": _METADATA,
            "data": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "Namespace": {**_KIND, "properties": {"apiVersion": {"const": "v1"}, "metadata": _METADATA}},
}


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def load_kustomization() -> Doc:
    data = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert isinstance(data, dict)
    return data


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as kustomize reads them (comments and blank lines skipped, no unquoting)."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value
    return pairs


def generated_secrets() -> list[tuple[str, Doc]]:
    """The Secrets the kustomization's secretGenerator makes, from the committed <file>.example (the
    real <file> holds credentials and is never committed)."""
    docs = []
    for gen in load_kustomization().get("secretGenerator", []):
        data: dict[str, str] = {}
        for env in gen.get("envs", []):
            data.update(read_env_file(K8S / f"{env}.example"))
        docs.append(("kustomization.yaml", {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": gen["name"]}, "type": "Opaque",
            "stringData": data,
        }))
    return docs


def load_k8s() -> list[tuple[str, Doc]]:
    docs: list[tuple[str, Doc]] = []
    for path in k8s_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path.name, doc))
    return docs + generated_secrets()


def _resolve_port(container: Doc, port: int | str) -> int | None:
    for p in container.get("ports", []):
        if port in (p.get("containerPort"), p.get("name")):
            return int(p["containerPort"])
    return None


def _container(workload: Doc) -> Doc:
    container: Doc = workload["spec"]["template"]["spec"]["containers"][0]
    return container


def _secret_keys(secret: Doc) -> set[str]:
    return set(secret.get("data", {})) | set(secret.get("stringData", {}))


def _config_refs(container: Doc) -> list[str]:
    return [e["configMapRef"]["name"] for e in container.get("envFrom", []) if "configMapRef" in e]


def _secret_refs(container: Doc) -> dict[str, Doc]:
    """env var -> its secretKeyRef."""
    return {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def _by_kind(docs: list[tuple[str, Doc]], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for _, d in docs if d.get("kind") == kind}


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

    deployments = _by_kind(docs, "Deployment")
    services = _by_kind(docs, "Service")
    config_maps = _by_kind(docs, "ConfigMap")
    secrets = _by_kind(docs, "Secret")
    hpas = _by_kind(docs, "HorizontalPodAutoscaler")
    pdbs = _by_kind(docs, "PodDisruptionBudget")
    jobs = _by_kind(docs, "Job")
    folders = _service_folders()

    for kind, objs in (("Deployment", deployments), ("Service", services), ("PodDisruptionBudget", pdbs)):
        if set(objs) != set(SERVICES):
            problems.append(f"k8s: {kind}s {sorted(objs)} != {sorted(SERVICES)}")
        for name in objs:
            if name not in folders:
                problems.append(f"k8s: {kind} {name} has no folder services/{name}")
    if len(secrets) != 1 or not next(iter(secrets)).startswith(SECRET_NAME):
        problems.append(f"k8s: Secrets {sorted(secrets)}, expected one named {SECRET_NAME}(-<hash>)")

    def check_env(where: str, container: Doc) -> None:
        for var, ref in _secret_refs(container).items():
            secret = secrets.get(ref.get("name", ""))
            if secret is None:
                problems.append(f"{where}: {var} refers to missing Secret {ref.get('name')}")
            elif ref.get("key") not in _secret_keys(secret):
                problems.append(f"{where}: {var} refers to key {ref.get('key')} that Secret {ref['name']} lacks")
            elif ref.get("optional"):
                problems.append(f"{where}: {var} must not be optional")
        for ref in _config_refs(container):
            if ref not in config_maps:
                problems.append(f"{where}: envFrom names missing ConfigMap {ref}")
            elif "YARDSTICK_CITY" not in config_maps[ref]["data"]:
                problems.append(f"{where}: ConfigMap {ref} has no YARDSTICK_CITY")
        if not _config_refs(container):
            problems.append(f"{where}: takes no settings from a ConfigMap")
        for e in container.get("envFrom", []):
            if "secretRef" in e and e["secretRef"].get("name") not in secrets:
                problems.append(f"{where}: envFrom names missing Secret {e['secretRef'].get('name')}")

    for name, dep in deployments.items():
        where = f"Deployment {name}"
        spec = dep["spec"]
        pod_labels = spec["template"]["metadata"]["labels"]
        selector = spec["selector"]["matchLabels"]
        if not selector.items() <= pod_labels.items():
            problems.append(f"{where}: selector {selector} does not match pod labels {pod_labels}")
        # With an autoscaler the count is its business: a replicas field would be reset on every apply.
        if name in hpas and "replicas" in spec:
            problems.append(f"{where}: sets replicas although HorizontalPodAutoscaler {name} owns the count")
        if name not in hpas and spec.get("replicas", 1) < 2:
            problems.append(f"{where}: without an autoscaler it needs replicas >= 2")
        container = _container(dep)
        if container.get("command") != ["yardstick", "serve", name]:
            problems.append(f"{where}: command {container.get('command')} does not serve {name}")
        port, prefix = SERVICES.get(name, (None, None))
        if [p["containerPort"] for p in container["ports"]] != [port]:
            problems.append(f"{where}: container ports {container['ports']} != [{port}]")
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"),
                            ("startupProbe", "/healthz")):
            get = container[probe]["httpGet"]
            if get["path"] != path:
                problems.append(f"{where}: {probe} path {get['path']} != {path}")
            if _resolve_port(container, get["port"]) != port:
                problems.append(f"{where}: {probe} port {get['port']} is not the container port {port}")
        refs = _secret_refs(container)
        for var in (f"YARDSTICK_{prefix}_DATABASE_URL", "YARDSTICK_AUTH_DATABASE_URL", "YARDSTICK_AUTH_SECRET"):
            if var not in refs or refs[var].get("key") != var or not refs[var].get("name", "").startswith(SECRET_NAME):
                problems.append(f"{where}: {var} does not come from Secret {SECRET_NAME}")
        for var in refs:
            # Least privilege: a pod sees its own database, not the others'.
            m = re.fullmatch(r"YARDSTICK_(\w+)_DATABASE_URL", var)
            if m and m.group(1) not in (prefix, "AUTH"):
                problems.append(f"{where}: gets another service's database URL {var}")
        plain = {e["name"] for e in container.get("env", []) if "value" in e}
        for var in plain:
            if re.search(r"(SECRET|_KEY|DATABASE_URL)$", var):
                problems.append(f"{where}: {var} is written in the manifest; it must come from the Secret")
        if next((e.get("value") for e in container.get("env", []) if e["name"] == f"YARDSTICK_{prefix}_HOST"),
                None) != "0.0.0.0":
            problems.append(f"{where}: YARDSTICK_{prefix}_HOST must be 0.0.0.0")
        check_env(where, container)
    if "feedback-intake" in deployments:
        intake_refs = _secret_refs(_container(deployments["feedback-intake"]))
        for var in ("YARDSTICK_INTAKE_SOCIAL_SECRETS", "YARDSTICK_INTAKE_CONTACT_KEY"):
            if var not in intake_refs:
                problems.append(f"Deployment feedback-intake: {var} does not come from the Secret")

    for name, svc in services.items():
        where = f"Service {name}"
        dep = deployments.get(name)
        if dep is None:
            problems.append(f"{where}: no Deployment of the same name")
            continue
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        if not svc["spec"]["selector"].items() <= pod_labels.items():
            problems.append(f"{where}: selector {svc['spec']['selector']} selects no pod of Deployment {name}")
        port = SERVICES.get(name, (None, None))[0]
        for p in svc["spec"]["ports"]:
            if p["port"] != port:
                problems.append(f"{where}: port {p['port']} != {port}")
            if _resolve_port(_container(dep), p["targetPort"]) != port:
                problems.append(f"{where}: targetPort {p['targetPort']} is not the container port {port}")

    if set(hpas) != AUTOSCALED:
        problems.append(f"k8s: HorizontalPodAutoscalers {sorted(hpas)} != {sorted(AUTOSCALED)}")
    for name, hpa in hpas.items():
        where = f"HorizontalPodAutoscaler {name}"
        spec = hpa["spec"]
        target = spec["scaleTargetRef"]
        if (target.get("apiVersion"), target.get("kind")) != ("apps/v1", "Deployment") or \
                target.get("name") not in deployments:
            problems.append(f"{where}: scaleTargetRef {target} is not an existing Deployment")
        if spec["maxReplicas"] < spec["minReplicas"]:
            problems.append(f"{where}: maxReplicas {spec['maxReplicas']} < minReplicas {spec['minReplicas']}")
        if target.get("name") in CONSUMER_BOUND and spec["maxReplicas"] > PARTITIONS:
            problems.append(f"{where}: maxReplicas {spec['maxReplicas']} > {PARTITIONS} partitions: extra pods idle")
        for metric in spec["metrics"]:
            resource = metric.get("resource", {})
            dep = deployments.get(target.get("name", ""))
            if metric.get("type") == "Resource" and dep is not None and \
                    resource.get("name") not in _container(dep)["resources"]["requests"]:
                problems.append(f"{where}: scales on {resource.get('name')}, which the pods do not request")

    for name, pdb in pdbs.items():
        dep = deployments.get(name)
        selector = pdb["spec"]["selector"].get("matchLabels", {})
        if dep is None or not selector or not selector.items() <= dep["spec"]["template"]["metadata"]["labels"].items():
            problems.append(f"PodDisruptionBudget {name}: selects no pod of Deployment {name}")
        elif "minAvailable" in pdb["spec"] and name not in hpas and \
                pdb["spec"]["minAvailable"] >= dep["spec"].get("replicas", 1):
            problems.append(f"PodDisruptionBudget {name}: minAvailable leaves no pod that may be evicted")

    problems += _job_problems(jobs, deployments, check_env)
    return problems


def _job_problems(jobs: dict[str, Doc], deployments: dict[str, Doc], check_env: Any) -> list[str]:
    """The migration Job: `yardstick migrate all` with the Deployments' image and their database URLs."""
    problems: list[str] = []
    if list(jobs) != ["yardstick-migrate"]:
        return [f"k8s: Jobs {sorted(jobs)} != ['yardstick-migrate']"]
    job = jobs["yardstick-migrate"]
    where = "Job yardstick-migrate"
    container = _container(job)
    if container["command"] != MIGRATE_COMMAND:
        problems.append(f"{where}: command {container['command']} != {MIGRATE_COMMAND}")
    if job["spec"]["template"]["spec"].get("restartPolicy") not in ("Never", "OnFailure"):
        problems.append(f"{where}: restartPolicy must be Never or OnFailure")
    images = {_container(d)["image"] for d in deployments.values()}
    if images != {container["image"]}:
        problems.append(f"{where}: image {container['image']} is not the Deployments' {sorted(images)}")
    job_refs = _secret_refs(container)
    wanted: dict[str, Doc] = {}
    for name, dep in deployments.items():
        prefix = SERVICES.get(name, (None, ""))[1]
        ref = _secret_refs(_container(dep)).get(f"YARDSTICK_{prefix}_DATABASE_URL")
        if ref is not None:
            wanted[f"YARDSTICK_{prefix}_DATABASE_URL"] = ref
    for var, ref in wanted.items():
        if job_refs.get(var) != ref:
            problems.append(f"{where}: {var} is {job_refs.get(var)}, the Deployment's is {ref}")
    for dep in deployments.values():
        if _config_refs(_container(dep)) != _config_refs(container):
            problems.append(f"{where}: settings {_config_refs(container)} differ from the Deployments'")
            break
    check_env(where, container)
    return problems


def test_k8s_manifests_are_valid() -> None:
    docs = load_k8s()
    assert docs, "no manifests in deploy/k8s"
    assert k8s_problems(docs) == []


def test_one_file_per_service() -> None:
    for name in SERVICES:
        kinds = sorted(d["kind"] for _, d in yaml_docs(K8S / f"{name}.yaml"))
        expected = ["Deployment", "PodDisruptionBudget", "Service"]
        assert kinds == sorted([*expected, "HorizontalPodAutoscaler"] if name in AUTOSCALED else expected), name


def yaml_docs(path: Path) -> list[tuple[str, Doc]]:
    return [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d is not None]


def test_kustomization_lists_every_manifest() -> None:
    kustomization = load_kustomization()
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(p.name for p in k8s_files())
    envs = [env for gen in kustomization["secretGenerator"] for env in gen["envs"]]
    assert envs == ["secrets.env"]


def test_committed_secrets_are_placeholders_and_the_real_file_is_ignored() -> None:
    example = read_env_file(K8S / "secrets.env.example")
    assert example, "secrets.env.example is empty"
    for key, value in example.items():
        assert "REPLACE_ME" in value, f"{key} in secrets.env.example is not an obvious placeholder"
    # A database URL placeholder points at a name that can never resolve (.invalid, RFC 2606).
    for key, value in example.items():
        if key.endswith("_DATABASE_URL"):
            assert re.search(r"@[\w.-]+\.invalid:5432/yardstick_\w+$", value), key
    ignored = subprocess.run(["git", "check-ignore", "-q", str(K8S / "secrets.env")], cwd=REPO)
    assert ignored.returncode == 0, "deploy/k8s/secrets.env is not git-ignored"
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", str(K8S / "secrets.env")], cwd=REPO,
                             capture_output=True)
    assert tracked.returncode != 0, "deploy/k8s/secrets.env is committed"


def _kubernetes_validate(docs: list[tuple[str, Doc]]) -> list[str]:
    errors = []
    for file, doc in docs:
        try:
            kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{file} {doc['kind']}/{doc['metadata']['name']}: {str(exc).splitlines()[0]}")
    return errors


def test_k8s_against_the_kubernetes_openapi_schemas() -> None:
    """Strict validation against the Kubernetes schemas bundled with kubernetes-validate (no network)."""
    docs = load_k8s()
    assert {d["kind"] for _, d in docs} >= {"Deployment", "Service", "Job", "HorizontalPodAutoscaler",
                                             "PodDisruptionBudget", "Secret", "ConfigMap", "Namespace"}
    assert _kubernetes_validate(docs) == []


def test_kubernetes_validate_catches_a_wrong_field() -> None:
    docs = copy.deepcopy(load_k8s())
    _hpa(docs, "scoring")["spec"]["targetCPUUtilizationPercentage"] = 70  # autoscaling/v1's field, not v2's
    _container(_job(docs))["resources"]["requests"]["cpu"] = {"cores": 1}
    errors = _kubernetes_validate(docs)
    assert any("HorizontalPodAutoscaler/scoring" in e for e in errors)
    assert any("Job/yardstick-migrate" in e for e in errors)


def kustomize_build(tmp_path: Path) -> list[Doc]:
    """`kubectl kustomize` on a copy of deploy/k8s with secrets.env made from the example."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl not installed (Debian: apt-get install -y kubernetes-client)")
    work = tmp_path / "k8s"
    shutil.copytree(K8S, work, ignore=shutil.ignore_patterns("secrets.env"))
    shutil.copy(work / "secrets.env.example", work / "secrets.env")
    out = subprocess.run([kubectl, "kustomize", str(work)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_kustomize_builds(tmp_path: Path) -> None:
    built = kustomize_build(tmp_path)
    assert {d["metadata"].get("namespace") for d in built if d["kind"] != "Namespace"} == {"yardstick"}
    docs = [("kustomize", d) for d in built]
    assert k8s_problems(docs) == []
    assert _kubernetes_validate(docs) == []
    # The generated Secret's name carries a hash of its content, and every reference follows it.
    secret = next(d for d in built if d["kind"] == "Secret")
    assert re.fullmatch(rf"{SECRET_NAME}-[a-z0-9]{{10}}", secret["metadata"]["name"])
    assert set(secret["data"]) == set(read_env_file(K8S / "secrets.env.example"))


def test_kustomize_refuses_to_build_without_the_real_secrets(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl is not None
    work = tmp_path / "k8s"
    shutil.copytree(K8S, work, ignore=shutil.ignore_patterns("secrets.env"))
    out = subprocess.run([kubectl, "kustomize", str(work)], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "secrets.env" in out.stderr


# ------------------------------------------------------------------- the checkers can fail


def _deployment(docs: list[tuple[str, Doc]], name: str) -> Doc:
    return next(d for _, d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name)


def _service(docs: list[tuple[str, Doc]], name: str) -> Doc:
    return next(d for _, d in docs if d["kind"] == "Service" and d["metadata"]["name"] == name)


def _hpa(docs: list[tuple[str, Doc]], name: str) -> Doc:
    return next(d for _, d in docs if d["kind"] == "HorizontalPodAutoscaler" and d["metadata"]["name"] == name)


def _job(docs: list[tuple[str, Doc]]) -> Doc:
    return next(d for _, d in docs if d["kind"] == "Job")


def _secret(docs: list[tuple[str, Doc]]) -> Doc:
    return next(d for _, d in docs if d["kind"] == "Secret")


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
    container = _container(_deployment(docs, "feedback-intake"))
    container["readinessProbe"]["httpGet"]["path"] = "/healthz"
    container["livenessProbe"]["httpGet"]["port"] = 9999
    problems = k8s_problems(docs)
    assert any("targetPort 8003" in p for p in problems)
    assert any("readinessProbe path /healthz" in p for p in problems)
    assert any("livenessProbe port 9999" in p for p in problems)


def test_k8s_checker_catches_missing_image_resources_and_unknown_service() -> None:
    docs = copy.deepcopy(load_k8s())
    del _container(_deployment(docs, "notices"))["image"]
    del _container(_deployment(docs, "scoring"))["resources"]["limits"]
    problems = k8s_problems(docs)
    assert any("'image' is a required property" in p for p in problems)
    assert any("scoring" in p and "'limits' is a required property" in p for p in problems)
    docs = copy.deepcopy(load_k8s())
    _deployment(docs, "notices")["metadata"]["name"] = "billing"
    assert any("billing" in p for p in k8s_problems(docs))


def test_k8s_checker_catches_secret_references_to_missing_keys() -> None:
    docs = copy.deepcopy(load_k8s())
    del _secret(docs)["stringData"]["YARDSTICK_INTAKE_SOCIAL_SECRETS"]
    _secret_refs(_container(_deployment(docs, "notices")))["YARDSTICK_AUTH_SECRET"]["name"] = "other-secret"
    problems = k8s_problems(docs)
    assert any("feedback-intake" in p and "key YARDSTICK_INTAKE_SOCIAL_SECRETS" in p for p in problems)
    assert any("notices" in p and "missing Secret other-secret" in p for p in problems)


def test_k8s_checker_catches_a_plain_secret_and_a_foreign_database() -> None:
    docs = copy.deepcopy(load_k8s())
    env = _container(_deployment(docs, "scoring"))["env"]
    env.append({"name": "YARDSTICK_NOTICES_DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": "YARDSTICK_NOTICES_DATABASE_URL"}}})
    auth = next(e for e in env if e["name"] == "YARDSTICK_AUTH_SECRET")
    auth.pop("valueFrom")
    auth["value"] = "not-so-secret"
    problems = k8s_problems(docs)
    assert any("scoring: gets another service's database URL YARDSTICK_NOTICES_DATABASE_URL" in p for p in problems)
    assert any("scoring: YARDSTICK_AUTH_SECRET is written in the manifest" in p for p in problems)


def test_k8s_checker_catches_autoscaler_mistakes() -> None:
    docs = copy.deepcopy(load_k8s())
    _hpa(docs, "scoring")["spec"]["scaleTargetRef"]["name"] = "scorer"
    _hpa(docs, "notices")["spec"]["maxReplicas"] = 12
    _deployment(docs, "feedback-intake")["spec"]["replicas"] = 3
    problems = k8s_problems(docs)
    assert any("HorizontalPodAutoscaler scoring: scaleTargetRef" in p for p in problems)
    assert any("HorizontalPodAutoscaler notices: maxReplicas 12 > 6" in p for p in problems)
    assert any("Deployment feedback-intake: sets replicas" in p for p in problems)
    docs = [(f, d) for f, d in copy.deepcopy(load_k8s())
            if not (d["kind"] == "HorizontalPodAutoscaler" and d["metadata"]["name"] == "notices")]
    assert any("HorizontalPodAutoscalers" in p for p in k8s_problems(docs))


def test_k8s_checker_catches_migration_job_drift() -> None:
    docs = copy.deepcopy(load_k8s())
    job = _container(_job(docs))
    job["image"] = "yardstick:0.0.9"
    job["command"] = ["yardstick", "migrate", "scoring"]
    _secret_refs(job)["YARDSTICK_TARGETS_DATABASE_URL"]["key"] = "YARDSTICK_AUTH_DATABASE_URL"
    problems = k8s_problems(docs)
    assert any("Job yardstick-migrate: image yardstick:0.0.9" in p for p in problems)
    assert any("Job yardstick-migrate: command" in p for p in problems)
    assert any("Job yardstick-migrate: YARDSTICK_TARGETS_DATABASE_URL" in p for p in problems)


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


def test_compose_checker_catches_migration_mistakes() -> None:
    compose = copy.deepcopy(load_compose())
    # The services share one depends_on through a YAML anchor: give each its own before changing one.
    for name in SERVICES:
        compose["services"][name]["depends_on"] = copy.deepcopy(compose["services"][name]["depends_on"])
    compose["services"]["scoring"]["depends_on"].pop("migrate")
    compose["services"]["notices"]["depends_on"]["migrate"]["condition"] = "service_started"
    compose["services"]["migrate"]["environment"]["YARDSTICK_TARGETS_DATABASE_URL"] = (
        "postgresql+asyncpg://yardstick:yardstick@postgres:5432/yardstick_scoring")
    compose["services"]["migrate"]["restart"] = "unless-stopped"
    compose["services"]["feedback-intake"]["environment"]["YARDSTICK_INTAKE_SOCIAL_SECRETS"] = '{"weibo": "s3"}'
    problems = compose_problems(compose)
    assert any("scoring: must depend on migrate with service_completed_successfully, not None" in p
               for p in problems)
    assert any("notices: must depend on migrate" in p and "service_started" in p for p in problems)
    assert any("migrate: database URLs" in p for p in problems)
    assert any("migrate: a one-shot must not restart" in p for p in problems)
    assert any("YARDSTICK_INTAKE_SOCIAL_SECRETS has a value in the file" in p for p in problems)
    compose = copy.deepcopy(load_compose())
    del compose["services"]["migrate"]
    assert any("no migrate service" in p for p in compose_problems(compose))
