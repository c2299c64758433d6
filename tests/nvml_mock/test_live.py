"""The config file as a live channel: rewrites are seen, bad rewrites are refused, none are lost."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from nvml_mock import builders, faults
from nvml_mock.live import LiveConfig, update_config
from nvml_mock.model import ConfigError


def test_each_rewrite_is_seen_even_when_size_and_mtime_tick_do_not_change(write_node: Any) -> None:
    path, _ = write_node(gpus=1)
    live = LiveConfig(path)
    for width in (9, 8, 7, 6, 5, 4):  # same file size every time, written back to back
        update_config(path, lambda raw, w=width: faults.set_link_width(raw, 0, w))
        assert live.current().gpus[0].link_width_current == width


def test_a_broken_hand_edit_keeps_the_last_good_config(write_node: Any) -> None:
    path, _ = write_node(gpus=2)
    live = LiveConfig(path)
    good = live.current()
    path.write_text(path.read_text().replace("card_count = 2", "card_count = \"two\""))
    assert live.current() == good
    assert live.last_error is not None and "gpus.card_count" in str(live.last_error)
    builders.write_config(path, builders.node_config(gpus=3))
    assert len(live.current().gpus) == 3
    assert live.last_error is None


def test_concurrent_injectors_lose_no_event(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    builders.write_config(path, builders.node_config(gpus=2))

    def inject_many(gpu: int) -> None:
        for _ in range(15):
            update_config(path, lambda raw: faults.inject_xid(raw, gpu, 79, now=0.0))

    threads = [threading.Thread(target=inject_many, args=(g,)) for g in (0, 1, 0)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    config = LiveConfig(path).current()
    assert sorted(e.seq for e in config.xid_events) == list(range(1, 46))
    assert sum(e.gpu == 0 for e in config.xid_events) == 30


def test_invalid_change_leaves_the_file_untouched(write_node: Any) -> None:
    path, _ = write_node(gpus=1)
    before = path.read_text()
    with pytest.raises(ConfigError, match="link_width_current"):
        update_config(path, lambda raw: faults.set_link_width(raw, 0, 64))
    assert path.read_text() == before
