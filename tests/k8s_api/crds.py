"""CustomResourceDefinitions: loading them from YAML and the resource type each one serves."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.k8s_api.resources import ApiError, Obj, ResourceType, ScalePaths, now

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = REPO_ROOT / "deploy" / "crds"


def crd_resource_type(crd: Obj) -> ResourceType:
    """A CustomResourceDefinition (apiextensions.k8s.io/v1) as the resource type it serves."""
    where = f"CRD {crd.get('metadata', {}).get('name', '?')!r}"
    try:
        spec = crd["spec"]
        names = spec["names"]
        versions = [v for v in spec["versions"] if v.get("served", True)]
        versions.sort(key=lambda v: not v.get("storage", False))
        group, plural, kind = spec["group"], names["plural"], names["kind"]
    except (KeyError, TypeError) as exc:
        raise ApiError(422, "Invalid", f"{where}: missing {exc} (need spec.group, spec.names.plural/kind, "
                       "spec.versions)") from exc
    if crd.get("metadata", {}).get("name") != f"{plural}.{group}":
        raise ApiError(422, "Invalid", f"{where}: metadata.name must be '{plural}.{group}'")
    if not versions:
        raise ApiError(422, "Invalid", f"{where}: no served version in spec.versions")
    subresources = versions[0].get("subresources") or {}
    scale = subresources.get("scale")
    return ResourceType(
        group=group, versions=tuple(v["name"] for v in versions), plural=plural, kind=kind,
        namespaced=spec.get("scope", "Namespaced") == "Namespaced", status="status" in subresources,
        scale=ScalePaths(scale.get("specReplicasPath", ".spec.replicas"),
                         scale.get("statusReplicasPath", ".status.replicas"),
                         scale.get("labelSelectorPath", "")) if scale is not None else None,
        short_names=tuple(names.get("shortNames") or ()), categories=tuple(names.get("categories") or ()),
        singular=names.get("singular") or kind.lower())


def established_status(crd: Obj, rt: ResourceType) -> Obj:
    """The status the real server gives a CRD whose names it accepted: NamesAccepted and Established."""
    return {
        "acceptedNames": crd["spec"]["names"],
        "storedVersions": [rt.versions[0]],
        "conditions": [{"type": t, "status": "True", "reason": r, "lastTransitionTime": now(), "message": m}
                       for t, r, m in (("NamesAccepted", "NoConflicts", "no conflicts found"),
                                       ("Established", "InitialNamesAccepted", "the initial names have been "
                                                                               "accepted"))],
    }


def load_crd_documents(*sources: str | Path | Obj, only_crds: bool = False) -> list[tuple[str, Obj]]:
    """(where, CRD dict) from YAML files, YAML text, or dicts.

    Other kinds of documents are an error, or skipped with only_crds (a kustomization.yaml beside
    the CRDs in deploy/crds/ is fine).
    """
    docs: list[tuple[str, Obj]] = []
    for source in sources:
        if isinstance(source, dict):
            docs.append(("a dict", source))
            continue
        text, where = source, "YAML text"
        if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source):
            path = Path(source)
            if not path.is_absolute() and not path.exists():
                path = REPO_ROOT / path  # paths relative to the repository root
            text, where = path.read_text(), str(path)
        try:
            loaded = list(yaml.safe_load_all(str(text)))
        except yaml.YAMLError as exc:
            raise ValueError(f"{where}: not valid YAML: {exc}") from exc
        for doc in loaded:
            if doc is None:
                continue
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                if only_crds:
                    continue
                kind = doc.get("kind") if isinstance(doc, dict) else type(doc).__name__
                raise ValueError(f"{where}: expected only CustomResourceDefinition documents, found {kind!r}")
            docs.append((where, doc))
    return docs
