"""Bad input and an unusable accelerator library end the plugin with a clear message."""

from __future__ import annotations

from tests.deviceplugin.conftest import brix_run


def test_malformed_mock_toml_names_file_and_key_and_exits_2(kubelet_dir, mock_config):
    bad = mock_config('[gpus]\ncard_count = 2\n\n[gpus-0]\nlink_width_max = "wide"\n', name="bad.toml")
    result = brix_run("device-plugin", "--kubelet-dir", str(kubelet_dir), "--mock-config", str(bad),
                      "--metrics-port", "0")
    assert result.returncode == 2
    assert str(bad) in result.stderr and "link_width_max" in result.stderr


def test_unparsable_toml_exits_2(kubelet_dir, mock_config):
    bad = mock_config("[gpus\ncard_count = 1\n", name="broken.toml")
    result = brix_run("device-plugin", "--kubelet-dir", str(kubelet_dir), "--mock-config", str(bad),
                      "--metrics-port", "0")
    assert result.returncode == 2 and str(bad) in result.stderr


def test_nvml_init_failure_is_logged_and_exits_1(kubelet_dir, mock_config):
    config = mock_config("[gpus]\ncard_count = 1\nnvml_init_error = 9\n", name="noinit.toml")
    result = brix_run("device-plugin", "--kubelet-dir", str(kubelet_dir), "--mock-config", str(config),
                      "--metrics-port", "0")
    assert result.returncode == 1
    assert "NVML init failed" in result.stderr


def test_bad_flags_say_what_to_use(kubelet_dir, mock_config):
    config = mock_config(gpus=1)
    base = ["device-plugin", "--kubelet-dir", str(kubelet_dir), "--mock-config", str(config)]
    result = brix_run(*base, "--device-list-strategy", "envvar,bogus")
    assert result.returncode == 2 and "bogus" in result.stderr and "cdi-cri" in result.stderr
    result = brix_run(*base, "--disable-healthchecks", "79,nope")
    assert result.returncode == 2 and "'nope' is not an XID number" in result.stderr
    result = brix_run("device-plugin", "--mock-config", str(kubelet_dir / "missing.toml"))
    assert result.returncode == 2 and "no such file" in result.stderr


def test_too_long_kubelet_dir_is_refused_before_serving(tmp_path, mock_config):
    config = mock_config(gpus=1)
    result = brix_run("device-plugin", "--kubelet-dir", "/tmp/" + "d" * 110, "--mock-config", str(config))
    assert result.returncode == 2 and "under 108 bytes" in result.stderr
