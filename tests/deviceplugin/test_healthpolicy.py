"""The pure health policy: NVIDIA-compatible XID switches and Brix's recovery rule."""

from __future__ import annotations

import math

import pytest

from deviceplugin.healthpolicy import DEFAULT_IGNORED_XIDS, DeviceHealth, PolicyError, observe, parse_checks


@pytest.mark.parametrize(("disable", "enable", "xid", "counts"), [
    (None, None, 79, True),           # critical hardware XID
    (None, None, 48, True),           # double-bit ECC
    (None, None, 999, True),          # unknown XIDs count, as in NVIDIA's plugin
    (None, None, 13, False),          # default ignored application XIDs
    (None, None, 109, False),
    ("79", None, 79, False),          # extra XIDs to ignore
    ("79, 94", None, 94, False),
    ("79", None, 48, True),
    ("xids", None, 79, False),        # XID checks off
    ("all", None, 79, False),         # every check off
    ("all", "79", 79, True),          # enable wins even with all disabled
    (None, "13", 13, True),           # enable wins over the default ignore list
    ("", "", 31, False),              # empty values mean unset
])
def test_xid_counts(disable, enable, xid, counts):
    assert parse_checks(disable, enable).xid_counts(xid) is counts


def test_default_ignored_xids_are_nvidias():
    assert DEFAULT_IGNORED_XIDS == {13, 31, 43, 45, 68, 109}


def test_polled_checks_can_be_switched_off_by_name():
    checks = parse_checks("ecc,PCIE_LINK", None)
    assert not checks.poll_enabled("ecc") and not checks.poll_enabled("pcie_link")
    assert checks.poll_enabled("remapped_rows") and checks.xid_counts(79)
    assert not parse_checks("all", None).poll_enabled("remapped_rows")
    assert parse_checks("all", None).watch_xids() is False
    assert parse_checks("all", "79").watch_xids() is True


@pytest.mark.parametrize(("disable", "enable", "needle"), [
    ("79,bogus", None, "'bogus' is not an XID number"),
    (None, "all", "DP_ENABLE_HEALTHCHECKS"),
    ("-4", None, "negative"),
])
def test_bad_values_name_the_variable_and_token(disable, enable, needle):
    with pytest.raises(PolicyError, match=needle):
        parse_checks(disable, enable)


def test_fault_then_recovery_after_quiet_period():
    state = DeviceHealth()
    state, t = observe(state, ["critical XID 79"], now=100.0, quiet_period=30)
    assert t is not None and not t.healthy and "79" in t.reason
    state, t = observe(state, [], now=110.0, quiet_period=30)
    assert t is None and not state.healthy
    state, t = observe(state, ["critical XID 79"], now=120.0, quiet_period=30)  # repeats restart the clock
    assert t is None
    state, t = observe(state, [], now=149.0, quiet_period=30)
    assert t is None and not state.healthy
    state, t = observe(state, [], now=150.0, quiet_period=30)
    assert t is not None and t.healthy and state.healthy and "recovered" in t.reason


def test_persistent_polled_fault_never_recovers_while_present():
    state = DeviceHealth()
    for now in range(0, 100, 5):
        state, _ = observe(state, ["row remapping pending"], now=float(now), quiet_period=10)
    assert not state.healthy


def test_infinite_quiet_period_is_nvidias_one_way_health():
    state, _ = observe(DeviceHealth(), ["x"], now=0.0, quiet_period=math.inf)
    state, t = observe(state, [], now=1e9, quiet_period=math.inf)
    assert t is None and not state.healthy


def test_clean_polls_of_a_healthy_device_report_nothing():
    state, t = observe(DeviceHealth(), [], now=5.0, quiet_period=1)
    assert t is None and state.healthy
