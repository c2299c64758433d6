"""brix.tokenizer, brix.prefix, brix.logs and brix.procs: the helpers every component shares."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from brix import logs, procs
from brix.prefix import block_hashes
from brix.tokenizer import count_tokens, token_ids, tokenize


def test_tokenizer_splits_words_into_short_pieces_with_leading_space() -> None:
    assert tokenize("Hello, world") == ["Hell", "o", ",", " worl", "d"]
    assert count_tokens("Hello, world") == 5


@given(st.text(max_size=200))
def test_tokens_rejoin_to_the_text_and_ids_are_stable(text: str) -> None:
    assert "".join(tokenize(text)) == text
    assert token_ids(text) == token_ids(text)
    assert len(token_ids(text)) == count_tokens(text)


def test_prefix_hashes_match_exactly_on_shared_full_blocks() -> None:
    a = list(range(40))
    b = list(range(32)) + [999] * 8
    ha, hb = block_hashes(a, 16), block_hashes(b, 16)
    assert len(ha) == 2 and len(hb) == 2  # the 8-token tail is not a full block
    assert ha[:2] == hb[:2]
    c = [7] + list(range(1, 40))  # differs in the first token: every chained hash differs
    assert not set(block_hashes(c, 16)) & set(ha)
    with pytest.raises(ValueError, match="block_size must be positive"):
        block_hashes(a, 0)


@given(st.lists(st.integers(min_value=0, max_value=31999), max_size=70), st.sampled_from([1, 4, 16]))
def test_prefix_hashes_follow_the_documented_rule(ids: list[int], block_size: int) -> None:
    # blake2b-64 over the previous block's digest + the block's ids as 4-byte little-endian ints:
    # engine_mock and the gateway (in separate processes) must hash the same blocks alike
    expected, parent = [], b"\x00" * 8
    for start in range(0, len(ids) - len(ids) % block_size, block_size):
        raw = b"".join(t.to_bytes(4, "little") for t in ids[start:start + block_size])
        parent = hashlib.blake2b(parent + raw, digest_size=8).digest()
        expected.append(int.from_bytes(parent, "little"))
    assert block_hashes(ids, block_size) == expected


@given(st.text(max_size=120))
def test_token_ids_are_crc32_of_each_token_first_time_and_cached(text: str) -> None:
    expected = [zlib.crc32(t.encode()) % 32000 for t in tokenize(text)]
    assert token_ids(text) == expected
    assert token_ids(text) == expected  # again, from the id cache


def test_key_value_log_lines_quote_what_needs_quoting() -> None:
    record = logging.LogRecord("brix.test", logging.WARNING, __file__, 1, "gpu unhealthy", None, None)
    record.fields = {"gpu": "GPU-1", "reason": "xid 79 fell off the bus"}
    line = logs.KeyValueFormatter().format(record)
    assert "level=warning" in line and "gpu=GPU-1" in line and 'reason="xid 79 fell off the bus"' in line
    assert json.loads(logs.JsonFormatter().format(record))["reason"] == "xid 79 fell off the bus"


def test_process_that_dies_early_reports_its_log(tmp_path: Path) -> None:
    proc = procs.start("crasher", [sys.executable, "-c", "print('boom: bad config'); raise SystemExit(3)"],
                       tmp_path / "c.log", ready_url="http://127.0.0.1:1/healthz")
    with pytest.raises(procs.ProcessFailed, match="boom: bad config"):
        proc.wait_ready(10)
    assert proc.stop() == 3


def test_process_is_stopped_by_pid(tmp_path: Path) -> None:
    port = procs.free_port()
    proc = procs.start("http", [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                       tmp_path / "h.log", ready_url=f"http://127.0.0.1:{port}/")
    proc.wait_ready(20)
    assert proc.alive()
    proc.stop()
    assert not proc.alive()


def test_a_process_is_ready_once_its_tcp_port_accepts(tmp_path: Path) -> None:
    """ready_port: for servers with no HTTP health endpoint (redis-server); not ready before it
    listens, ready after, and a process that exits first reports its log."""
    port = procs.free_port()
    code = (f"import socket, time; time.sleep(0.5); s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen();"
            " print('listening', flush=True); time.sleep(60)")
    proc = procs.start("late-listener", [sys.executable, "-c", code], tmp_path / "l.log", ready_port=port)
    try:
        assert not proc._is_ready()
        proc.wait_ready(10)
        assert "listening" in proc.log_tail()
    finally:
        proc.stop()
    dead = procs.start("gone", [sys.executable, "-c", "print('no port: bad flag'); raise SystemExit(2)"],
                       tmp_path / "g.log", ready_port=procs.free_port())
    with pytest.raises(procs.ProcessFailed, match="no port: bad flag"):
        dead.wait_ready(10)

