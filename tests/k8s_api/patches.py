"""Patches (GAP: kmock 0.8 merges only): merge, strategic merge, JSON and apply patches; no I/O."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import jsonpatch
import yaml

from tests.k8s_api.resources import ApiError, Obj


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: null deletes a key, objects merge, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def apply_patch(target: Obj, headers: Mapping[str, str], data: Any, text: str) -> Obj:
    """The patch of a PATCH request (its headers, parsed JSON body and raw text) applied to target."""
    headers = {k.lower(): v for k, v in headers.items()}
    ctype = headers.get("content-type", "application/merge-patch+json").split(";")[0].strip()
    if ctype == "application/json-patch+json":
        if not isinstance(data, list):
            raise ApiError(400, "BadRequest", "a JSON patch must be a list of operations")
        try:
            return jsonpatch.apply_patch(target, data)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise ApiError(422, "Invalid", f"the JSON patch could not be applied: {exc}") from exc
    if ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json",
                 "application/apply-patch+yaml", "application/json"):
        body = data
        if body is None and ctype == "application/apply-patch+yaml":
            body = yaml.safe_load(text)
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", f"a {ctype} body must be a JSON object")
        return merge_patch(target, body)
    raise ApiError(415, "UnsupportedMediaType", f"the patch content type {ctype!r} is not supported: use "
                   "application/merge-patch+json, strategic-merge-patch+json or json-patch+json")


def get_path(obj: Obj, path: str) -> Any:
    value: Any = obj
    for part in path.strip(".").split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def set_path(obj: Obj, path: str, value: Any) -> None:
    *parents, last = path.strip(".").split(".")
    for part in parents:
        obj = obj.setdefault(part, {})
    obj[last] = value
