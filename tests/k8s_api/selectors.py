"""Label and field selectors (GAP: kmock 0.8 has none): parsing and matching, no I/O."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tests.k8s_api.resources import ApiError, Obj, Route

Predicate = Callable[[Obj], bool]


def _field_value(obj: Obj, path: str) -> str:
    value: Any = obj
    for part in path.strip(".").split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses: 'a in (x,y),b' -> ['a in (x,y)', 'b']."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def parse_label_selector(text: str) -> list[Predicate]:
    preds: list[Predicate] = []
    for term in _split_top(text or ""):
        words = term.replace("(", " ( ").replace(")", " ) ").split()
        if len(words) >= 2 and words[1] in ("in", "notin"):
            key, op = words[0], words[1]
            values = {v.strip() for v in term.split("(", 1)[-1].rstrip(")").split(",") if v.strip()}
            if op == "in":
                preds.append(lambda o, k=key, vs=values: _labels(o).get(k) in vs)
            else:
                preds.append(lambda o, k=key, vs=values: _labels(o).get(k) not in vs)
        elif "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            preds.append(lambda o, k=key, v=value: _labels(o).get(k) != v)
        elif "=" in term:
            key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
            preds.append(lambda o, k=key, v=value: _labels(o).get(k) == v)
        elif term.startswith("!"):
            missing = term[1:].strip()
            preds.append(lambda o, k=missing: k not in _labels(o))
        elif term.replace("-", "").replace(".", "").replace("/", "").replace("_", "").isalnum():
            preds.append(lambda o, k=term: k in _labels(o))
        else:
            raise ApiError(400, "BadRequest", f"unable to parse labelSelector term {term!r}")
    return preds


def parse_field_selector(text: str) -> list[Predicate]:
    preds: list[Predicate] = []
    for term in _split_top(text or ""):
        negate = "!=" in term
        if "=" in term:
            path, value = (s.strip() for s in term.replace("!=", "=").replace("==", "=").split("=", 1))
            preds.append(lambda o, p=path, v=value, neg=negate: (_field_value(o, p) == v) != neg)
        else:
            raise ApiError(400, "BadRequest", f"invalid fieldSelector term {term!r}: use path=value or path!=value")
    return preds


def _labels(obj: Obj) -> dict[str, str]:
    return obj.get("metadata", {}).get("labels") or {}


def matcher(params: Mapping[str, str], route: Route) -> Predicate:
    """The objects a list, watch or deletecollection request selects: its selectors, namespace and name."""
    preds = parse_label_selector(params.get("labelSelector", ""))
    preds += parse_field_selector(params.get("fieldSelector", ""))
    if route.namespace is not None:
        preds.append(lambda o, ns=route.namespace: o["metadata"].get("namespace") == ns)
    if route.name is not None:  # a watch on one object's URL
        preds.append(lambda o, n=route.name: o["metadata"]["name"] == n)
    return lambda obj: all(pred(obj) for pred in preds)


def selector_string(selector: Obj | None) -> str:
    """A metav1.LabelSelector as the string form that Scale.status.selector carries."""
    if not selector:
        return ""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr.get("operator"), expr.get("key"), ",".join(expr.get("values") or [])
        terms.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                      "Exists": key, "DoesNotExist": f"!{key}"}.get(op, key))
    return ",".join(terms)
