"""The --config YAML: named strategy plugins with parameters, and per-model settings.

    default_strategy: least-request          # used when neither header nor model says otherwise
    plugins:                                 # optional: named instances with parameters
      - name: prefix                         # a name usable in strategy specs; defaults to type
        type: prefix-cache-aware
        params: {block_size: 16, match_threshold: 0.3}
    models:
      llama-3-8b:
        strategy: "prefix:3,least-request:2" # plugin names or built-in types, optional weights
        rps: 50                              # optional per-model requests/second limit

Validation collects every problem with its path and raises one ValueError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from brix.files import read_yaml
from gateway.routing.profile import parse_spec
from gateway.routing.registry import Registry


@dataclass(frozen=True)
class PluginConfig:
    name: str
    type: str
    params: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelConfig:
    strategy: str | None = None
    rps: float = 0.0


@dataclass(frozen=True)
class GatewayConfig:
    default_strategy: str = "least-request"
    plugins: tuple[PluginConfig, ...] = ()
    models: dict[str, ModelConfig] = field(default_factory=dict)


def parse_config(doc: object, registry: Registry, source: str = "config") -> GatewayConfig:
    problems: list[str] = []
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ValueError(f"{source}: expected a mapping at the top level")
    unknown = set(doc) - {"default_strategy", "plugins", "models"}
    if unknown:
        problems.append(f"{source}: unknown key(s) {', '.join(sorted(unknown))} (allowed: default_strategy, plugins, models)")
    plugins: list[PluginConfig] = []
    names: set[str] = set()
    raw_plugins = doc.get("plugins") or []
    if not isinstance(raw_plugins, list):
        problems.append(f"{source}: plugins: expected a list")
        raw_plugins = []
    for i, item in enumerate(raw_plugins):
        where = f"{source}: plugins[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: expected a mapping with type (and name, params)")
            continue
        ptype = item.get("type")
        name = item.get("name") or ptype
        params = item.get("params") or {}
        if ptype not in registry.factories:
            problems.append(f"{where}.type: unknown strategy type {ptype!r}; known: {', '.join(registry.types())}")
            continue
        if not isinstance(params, dict):
            problems.append(f"{where}.params: expected a mapping")
            continue
        if name in names:
            problems.append(f"{where}.name: duplicate plugin name {name!r}")
            continue
        try:
            registry.build(ptype, str(name), params)
        except (ValueError, TypeError) as exc:
            problems.append(f"{where}.params: {exc}")
            continue
        names.add(str(name))
        plugins.append(PluginConfig(str(name), str(ptype), dict(params)))
    known = names | set(registry.types())

    def check_spec(spec: object, where: str) -> str | None:
        if not isinstance(spec, str) or not spec.strip():
            problems.append(f"{where}: expected a strategy such as 'least-request' or 'prefix-cache-aware:3,least-request:2'")
            return None
        try:
            for n, _ in parse_spec(spec):
                if n not in known:
                    problems.append(f"{where}: unknown plugin {n!r}; known: {', '.join(sorted(known))}")
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
        return spec

    default = check_spec(doc.get("default_strategy", "least-request"), f"{source}: default_strategy") or "least-request"
    models: dict[str, ModelConfig] = {}
    raw_models = doc.get("models") or {}
    if not isinstance(raw_models, dict):
        problems.append(f"{source}: models: expected a mapping of model name to settings")
        raw_models = {}
    for model, settings in raw_models.items():
        where = f"{source}: models.{model}"
        if not isinstance(settings, dict):
            problems.append(f"{where}: expected a mapping with strategy and/or rps")
            continue
        extra = set(settings) - {"strategy", "rps"}
        if extra:
            problems.append(f"{where}: unknown key(s) {', '.join(sorted(extra))} (allowed: strategy, rps)")
        strategy = check_spec(settings["strategy"], f"{where}.strategy") if "strategy" in settings else None
        rps = settings.get("rps", 0) or 0
        if not isinstance(rps, (int, float)) or rps < 0:
            problems.append(f"{where}.rps: expected a non-negative number, got {rps!r}")
            rps = 0
        models[str(model)] = ModelConfig(strategy, float(rps))
    if problems:
        raise ValueError("\n".join(problems))
    return GatewayConfig(default, tuple(plugins), models)


def load_config(path: str | Path, registry: Registry) -> GatewayConfig:
    p = Path(path)
    return parse_config(read_yaml(p, "gateway config file"), registry, str(p))
