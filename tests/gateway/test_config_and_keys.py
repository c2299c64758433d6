"""--config and --api-keys-file: valid files load, every problem is reported with its place."""

from __future__ import annotations

import pytest

from gateway.apikeys import hash_key, load_keys
from gateway.config import load_config, parse_config
from gateway.errors import RequestRejected
from gateway.router import Router
from gateway.routing.registry import register_builtin


def test_config_loads_plugins_models_and_resolves_strategies(tmp_path):
    path = tmp_path / "gw.yaml"
    path.write_text("""
default_strategy: power-of-two
plugins:
  - name: pc
    type: prefix-cache-aware
    params: {block_size: 32, match_threshold: 0.5}
models:
  llama:
    strategy: "pc:3,least-request:2"
    rps: 20
  mistral: {rps: 5}
""")
    reg = register_builtin()
    cfg = load_config(path, reg)
    assert cfg.default_strategy == "power-of-two"
    assert cfg.models["llama"].rps == 20
    router = Router(reg, cfg)
    assert router.strategy_for("llama", None) == "pc:3,least-request:2"
    assert router.strategy_for("llama", "random") == "random"           # header wins
    assert router.strategy_for("mistral", None) == "power-of-two"       # model without strategy
    prof = router.profile("pc:3,least-request:2")
    assert prof.needs_prompt and prof.scorers[0].scorer.block_size == 32  # type: ignore[attr-defined]
    # the same named instance is shared by every profile that uses it
    assert router.profile("pc").scorers[0].scorer is prof.scorers[0].scorer


def test_config_reports_every_problem_with_its_path():
    doc = {"default_strategy": "nope", "plugins": [{"type": "prefix-cache-aware", "params": {"block_size": 0}},
                                                   {"type": "warp-drive"}],
           "models": {"m": {"strategy": "random:abc", "rps": -1, "colour": "red"}}, "extra": 1}
    with pytest.raises(ValueError) as info:
        parse_config(doc, register_builtin(), "gw.yaml")
    text = str(info.value)
    for fragment in ("gw.yaml: unknown key(s) extra", "plugins[0].params", "plugins[1].type: unknown strategy type",
                     "default_strategy: unknown plugin 'nope'", "models.m.strategy", "models.m.rps",
                     "models.m: unknown key(s) colour"):
        assert fragment in text


def test_unknown_strategy_in_a_header_is_a_400():
    router = Router(register_builtin(), parse_config({}, register_builtin()))
    with pytest.raises(RequestRejected) as info:
        router.profile("least-request,fastest-possible")
    assert info.value.status == 400 and "fastest-possible" in str(info.value)


def test_api_keys_file_is_hashed_and_validated(tmp_path):
    path = tmp_path / "keys.yaml"
    path.write_text(f"""
keys:
  - name: team-a
    sha256: {hash_key("sk-team-a-secret")}
    rpm: 10
    tpm: 1000
  - name: team-b
    sha256: {hash_key("sk-team-b-secret")}
    models: [llama]
""")
    book = load_keys(path)
    assert "sk-team-a-secret" not in path.read_text()
    key = book.lookup("Bearer sk-team-a-secret")
    assert key is not None and (key.name, key.rpm, key.tpm) == ("team-a", 10, 1000)
    assert book.lookup("Bearer sk-team-a-secreT") is None
    assert book.lookup("sk-team-a-secret") is None          # no Bearer scheme
    assert book.lookup(None) is None
    assert book.lookup("Bearer sk-team-b-secret").models == frozenset({"llama"})  # type: ignore[union-attr]


def test_bad_api_keys_file_names_each_entry(tmp_path):
    path = tmp_path / "keys.yaml"
    path.write_text("keys:\n  - name: a\n    sha256: 1234\n  - sha256: " + "a" * 64 + "\n    rpm: -3\n")
    with pytest.raises(ValueError) as info:
        load_keys(path)
    text = str(info.value)
    assert "keys[0].sha256" in text and "keys[1].name: missing" in text and "keys[1].rpm" in text


def test_metric_labels_fold_header_made_strategies():
    reg = register_builtin()
    router = Router(reg, parse_config({"models": {"m": {"strategy": "prefix-cache-aware:3,least-request:2"}}}, reg))
    assert router.metric_label("least-request") == "least-request"
    assert router.metric_label("prefix-cache-aware:3,least-request:2") == "prefix-cache-aware:3,least-request:2"
    assert router.metric_label("random:1.0001,least-request:7") == "custom"
