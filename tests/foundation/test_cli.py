"""The `brix` command line as a user runs it: a real subprocess, real exit codes."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from brix import __version__, cli
from brix.commands import Command, UsageError


def run_brix(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "brix", *args], capture_output=True, text=True, env=full_env,
                          timeout=60)


def test_version_subcommand_and_flag_print_the_package_version() -> None:
    assert run_brix("version").stdout.strip() == f"brix {__version__}"
    assert run_brix("--version").stdout.strip() == f"brix {__version__}"


def test_help_lists_every_registered_command() -> None:
    result = run_brix("--help")
    assert result.returncode == 0
    for command in cli.load_commands():
        assert command.name in result.stdout


@pytest.mark.parametrize("command", [c.name for c in cli.load_commands()])
def test_every_subcommand_help_shows_defaults_and_env_vars(command: str) -> None:
    result = run_brix(command, "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # argparse wraps lines anywhere between words
    parser, _ = cli.build_parser()
    child = cli._subparsers(parser)[command]
    for action in child._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"brix {command} {action.option_strings[0]} has no help text"
            assert f"[env {cli.env_var_for(command, action.dest)}]" in text


def test_unknown_flag_exits_2_and_says_where_to_look() -> None:
    result = run_brix("up", "--no-such-flag")
    assert result.returncode == 2
    assert "unrecognized arguments: --no-such-flag" in result.stderr
    assert "brix up --help" in result.stderr


def test_unknown_command_exits_2() -> None:
    result = run_brix("no-such-command")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def _demo_command(seen: dict[str, argparse.Namespace]) -> Command:
    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--metrics-port", type=int, default=9400, help="port")
        parser.add_argument("--verbose-thing", action="store_true", help="flag")
        parser.add_argument("--mode", choices=["a", "b"], default="a", help="mode")
        parser.add_argument("--max", action="append", default=[], help="repeatable")

    def run(args: argparse.Namespace) -> int:
        seen["args"] = args
        if args.mode == "b" and args.metrics_port == 1:
            raise UsageError("mode b needs a real port")
        return 0

    return Command("demo", "demo command", add, run)


def _main_with(commands: list[Command], argv: list[str], monkeypatch: pytest.MonkeyPatch,
               env: dict[str, str]) -> int:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(cli, "load_commands", lambda: commands)
    return cli.main(argv)


def test_environment_variables_fill_flags_and_the_command_line_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, argparse.Namespace] = {}
    cmd = [_demo_command(seen)]
    env = {"BRIX_DEMO_METRICS_PORT": "9999", "BRIX_DEMO_VERBOSE_THING": "true", "BRIX_DEMO_MODE": "b",
           "BRIX_DEMO_MAX": "A100=2,H100=1"}
    assert _main_with(cmd, ["demo"], monkeypatch, env) == 0
    args = seen["args"]
    assert (args.metrics_port, args.verbose_thing, args.mode, args.max) == (9999, True, "b", ["A100=2", "H100=1"])
    assert _main_with(cmd, ["demo", "--metrics-port", "7000"], monkeypatch, env) == 0
    assert seen["args"].metrics_port == 7000


@pytest.mark.parametrize(("env", "message"), [
    ({"BRIX_DEMO_METRICS_PORT": "nine"}, "BRIX_DEMO_METRICS_PORT='nine' is invalid for --metrics-port"),
    ({"BRIX_DEMO_MODE": "c"}, "BRIX_DEMO_MODE='c' is not one of: a, b"),
    ({"BRIX_DEMO_VERBOSE_THING": "maybe"}, "BRIX_DEMO_VERBOSE_THING='maybe' is not a boolean"),
])
def test_bad_environment_values_exit_2_naming_the_variable(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(SystemExit) as exc:
        _main_with([_demo_command({})], ["demo"], monkeypatch, env)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_usage_error_after_parsing_exits_2_with_the_message(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code = _main_with([_demo_command({})], ["demo", "--mode", "b", "--metrics-port", "1"], monkeypatch, {})
    assert code == 2
    assert "brix demo: error: mode b needs a real port" in capsys.readouterr().err
