"""Scenarios: data files (scenarios/NAME.yaml) holding the manifests of one llm-d deployment."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .kube import resource_for

SCENARIO_DIR = Path(__file__).with_name("scenarios")
COMPONENT_DIR = Path(__file__).with_name("components")
EXPECT_READY_ANNOTATION = "sandbox.llm-d.ai/expect-ready"  # "false" on a pod template: not Ready after `up`


class ScenarioError(ValueError):
    pass


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    namespace: str
    objects: list[dict]
    readonly_namespace: str = ""
    tls: bool = True
    expect: dict = field(default_factory=dict)

    @property
    def serving_checks(self) -> list[dict]:
        """`expect.serving` and `expect.also_serving` (a list): {service, port, status, body}. Each Service's pods
        must answer GET /v1/models with one of the statuses (default [200]), an answer other than 200 holding
        `body` (the EPP's own words, not the gateway's empty 500 while it has no EPP yet), before `up` returns,
        so that the gateway or router knows its routes by then."""
        return ([self.expect["serving"]] if "serving" in self.expect else []) + self.expect.get("also_serving", [])


def _expand(path: Path, item: dict) -> list[dict]:
    """An object, or `{include: FILE, values: {NAME: value}}`: the manifests of components/FILE (templates rendered from
    upstream's charts) with each ${NAME} replaced."""
    if "include" not in item:
        return [item]
    source = COMPONENT_DIR / item["include"]
    if not source.is_file():
        raise ScenarioError(f"{path}: no component {item['include']!r} in {COMPONENT_DIR}")
    text = source.read_text()
    for name, value in (item.get("values") or {}).items():
        text = text.replace("${" + name + "}", str(value))
    if "${" in text:
        missing = sorted(set(re.findall(r"\$\{([A-Z_]+)\}", text)))
        raise ScenarioError(f"{path}: {item['include']} needs values for {', '.join(missing)}")
    return [obj for obj in yaml.safe_load_all(text) if obj]


def names() -> list[str]:
    return sorted(path.stem for path in SCENARIO_DIR.glob("*.yaml"))


def load(name: str) -> Scenario:
    path = SCENARIO_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ScenarioError(f"no scenario {name!r}; known: {', '.join(names())}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    for key in ("name", "description", "namespace", "objects"):
        if key not in data:
            raise ScenarioError(f"{path}: missing {key!r}")
    data["objects"] = [obj for item in data["objects"] for obj in _expand(path, item)]
    if data["name"] != name:
        raise ScenarioError(f"{path}: name {data['name']!r} differs from the file name")
    namespaces = {o["metadata"]["name"] for o in data["objects"] if o.get("kind") == "Namespace"}
    for obj in data["objects"]:
        if resource_for(obj.get("apiVersion", ""), obj.get("kind", "")) is None:
            raise ScenarioError(f"{path}: unknown kind {obj.get('apiVersion')}/{obj.get('kind')}")
        if not obj.get("metadata", {}).get("name"):
            raise ScenarioError(f"{path}: a {obj['kind']} without a name")
        namespace = obj["metadata"].get("namespace")
        if namespace and namespace not in namespaces:
            raise ScenarioError(f"{path}: {obj['kind']} {obj['metadata']['name']} is in namespace {namespace!r} "
                                "which the scenario does not create")
    if data["namespace"] not in namespaces:
        raise ScenarioError(f"{path}: the scenario does not create its namespace {data['namespace']!r}")
    return Scenario(name=data["name"], description=data["description"].strip(), namespace=data["namespace"],
                    objects=data["objects"], readonly_namespace=data.get("readonly_namespace", data["namespace"]),
                    tls=data.get("tls", True), expect=data.get("expect") or {})
