"""GPU profiles: built-in coefficients and AIBrix profile JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine_mock.profiles import BUILTIN, ProfileError, builtin, load_aibrix_profile


def test_builtin_profiles_are_ordered_like_the_hardware() -> None:
    a10, l20, a100, h100 = (BUILTIN[n] for n in ("A10", "L20", "A100", "H100"))
    decode = [p.step_time(1, 1000) for p in (a10, l20, a100, h100)]
    assert decode == sorted(decode, reverse=True)  # memory bandwidth order
    assert h100.step_time(4096, 0) < a100.step_time(4096, 0) < a10.step_time(4096, 0)
    assert a10.kv_blocks(16) < l20.kv_blocks(16) < a100.kv_blocks(16)
    assert builtin("a100") is a100
    with pytest.raises(ProfileError, match="A10, L20, A100, H100"):
        builtin("V100")


@pytest.mark.parametrize("name", ["simulator-llama2-7b-a100.json", "simulator-llama2-7b-a40.json"])
def test_aibrix_profiles_load(shared_data: Path, name: str) -> None:
    prof = load_aibrix_profile(shared_data / "profiles" / name, BUILTIN["A100"])
    assert prof.name == name.removesuffix(".json")
    assert 1e-5 < prof.flop_s_per_token < 1e-3
    assert 1e-3 < prof.weights_s < 0.1


def test_aibrix_a40_is_slower_than_a100(shared_data: Path) -> None:
    a100 = load_aibrix_profile(shared_data / "profiles" / "simulator-llama2-7b-a100.json", BUILTIN["A100"])
    a40 = load_aibrix_profile(shared_data / "profiles" / "simulator-llama2-7b-a40.json", BUILTIN["A100"])
    assert a40.step_time(1, 500) > a100.step_time(1, 500)
    assert a40.step_time(2000, 0) > a100.step_time(2000, 0)


def test_bad_profile_files_say_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "p.json"
    bad.write_text("{nope")
    with pytest.raises(ProfileError, match="not JSON"):
        load_aibrix_profile(bad, BUILTIN["A100"])
    bad.write_text(json.dumps({"gpu": "x"}))
    with pytest.raises(ProfileError, match="'indexes' and 'tputs'"):
        load_aibrix_profile(bad, BUILTIN["A100"])
    with pytest.raises(ProfileError, match="cannot read"):
        load_aibrix_profile(tmp_path / "missing.json", BUILTIN["A100"])
