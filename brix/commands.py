"""The contract between a component's `cli.py` and the `brix` command line."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


class UsageError(Exception):
    """A bad flag value found after parsing (a missing file, contradictory flags).

    `brix` prints it as `brix <command>: error: <message>` and exits 2. Say what was wrong and
    how to fix it.
    """


@dataclass(frozen=True)
class Command:
    """One `brix <name>` subcommand.

    add_arguments declares flags only (defaults and help on every flag); run receives the parsed
    flags, builds the component's typed settings and runs it, returning the exit code. Heavy
    imports belong inside run, so that `brix --help` stays fast.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]
    description: str = ""
