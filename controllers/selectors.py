"""Kubernetes label selectors (metav1.LabelSelector) as plain data, for every controller (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True)
class Selector:
    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()   # (key, operator, values)

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels):
            return False
        for key, op, values in self.match_expressions:
            present = key in labels
            if (op == "In" and not (present and labels[key] in values)) or (op == "NotIn" and present and labels[key]
                                                                              in values) \
                    or (op == "Exists" and not present) or (op == "DoesNotExist" and present):
                return False
        return True

    def to_string(self) -> str:
        """The label-selector string (metav1.FormatLabelSelector): what /scale reports and lists take."""
        parts = [f"{k}={v}" for k, v in self.match_labels]
        for key, op, values in self.match_expressions:
            if op in ("In", "NotIn"):
                parts.append(f"{key} {op.lower()} ({','.join(values)})")
            else:
                parts.append(key if op == "Exists" else f"!{key}")
        return ",".join(parts)

    def with_label(self, key: str, value: str) -> Selector:
        return Selector(tuple(sorted({**dict(self.match_labels), key: value}.items())), self.match_expressions)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.match_labels:
            out["matchLabels"] = dict(self.match_labels)
        if self.match_expressions:
            out["matchExpressions"] = [{"key": k, "operator": op, **({"values": list(v)} if v else {})}
                                       for k, op, v in self.match_expressions]
        return out


def parse_selector(raw: Any, where: str, errors: list[str], matches_what: str) -> Selector:
    """A spec's selector; each problem is appended to `errors` with its field path. An empty
    selector is refused: it would take every `matches_what`."""
    if not isinstance(raw, dict) or not (raw.get("matchLabels") or raw.get("matchExpressions")):
        errors.append(f"{where} must have matchLabels or matchExpressions (an empty selector would take "
                      f"every {matches_what})")
        return Selector()
    labels = raw.get("matchLabels") or {}
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        errors.append(f"{where}.matchLabels must map label names to strings")
        labels = {}
    exprs = []
    for i, e in enumerate(raw.get("matchExpressions") or []):
        op = e.get("operator") if isinstance(e, dict) else None
        if op not in OPERATORS or not e.get("key"):
            errors.append(f"{where}.matchExpressions[{i}] needs a key and an operator In, NotIn, Exists or "
                          f"DoesNotExist, got {e!r}")
            continue
        values = tuple(str(v) for v in e.get("values") or [])
        if op in ("In", "NotIn") and not values:
            errors.append(f"{where}.matchExpressions[{i}]: operator {op} needs values")
        exprs.append((str(e["key"]), op, values))
    return Selector(tuple(sorted((str(k), str(v)) for k, v in labels.items())), tuple(exprs))
