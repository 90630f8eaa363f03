"""CLI commands contributed by feature modules (exports, fixity), registered in one place."""

from __future__ import annotations

import argparse
from collections.abc import Callable, MutableMapping
from typing import Any

Handler = Callable[[Any, argparse.Namespace], int]

# Modules that define ``register(subparsers, commands)``; each adds its own sub-commands.
MODULES: tuple[str, ...] = (
    "verification.cli.fixity",
    "verification.cli.exports",
    "verification.cli.views",
)


def register_all(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    commands: MutableMapping[str, Handler],
) -> None:
    """Let every feature module add its sub-commands and handlers."""
    import importlib

    for name in MODULES:
        importlib.import_module(name).register(subparsers, commands)
