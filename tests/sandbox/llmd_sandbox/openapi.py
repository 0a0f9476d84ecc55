"""The smallest OpenAPI v3 documents kubectl needs: PATCH operations that take `fieldValidation`.

kubectl (1.27+) validates manifests with `--validate=strict` by default: it reads /openapi/v3, and when the
PATCH operation of the object's group-version-kind lists the `fieldValidation` query parameter it leaves the
validation to the server (cli-runtime's queryParamVerifierV3). Without these documents it needs /openapi/v2
for client-side validation and fails. No request body schemas are given, so kubectl's client-side apply builds
its strategic merge patches from its compiled-in types (and JSON merge patches for custom resources), as it
does against a real server whose documents it cannot use.
"""

from __future__ import annotations

import hashlib
import json

from .resources import groups, resources_in

INFO = {"title": "Kubernetes", "version": "v1.32.4"}


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _all_group_versions() -> list[tuple[str, str]]:
    return [("", "v1")] + [(g.name, v) for g in groups() for v in g.versions]


def group_version_document(group: str, version: str) -> dict | None:
    if not resources_in(group, version):
        return None
    paths = {}
    for res in resources_in(group, version):
        if "patch" not in res.verbs:
            continue
        scope = "/namespaces/{namespace}" if res.namespaced else ""
        paths[f"/{_gv_path(group, version)}{scope}/{res.plural}/{{name}}"] = {"patch": {
            "operationId": f"patch{res.kind}",
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": res.kind},
            "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
                           {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True}}],
            "responses": {"200": {"description": "OK"}},
        }}
    return {"openapi": "3.0.0", "info": INFO, "paths": paths, "components": {}}


def root_document() -> dict:
    """`/openapi/v3`: each group-version's document, addressed with a hash of its content like the real one."""
    paths = {}
    for group, version in _all_group_versions():
        digest = hashlib.sha512(json.dumps(group_version_document(group, version), sort_keys=True).encode())
        paths[_gv_path(group, version)] = {
            "serverRelativeURL": f"/openapi/v3/{_gv_path(group, version)}?hash={digest.hexdigest()[:128].upper()}"}
    return {"paths": paths}
