"""`yasearch config`: the commented example configuration, or a check of a config file."""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from yasearch.config import Config, ConfigError

EXAMPLE = "peer.example.toml"


def example() -> str:
    """The shipped peer.toml example, documenting every key."""
    return resources.files("yasearch").joinpath(EXAMPLE).read_text(encoding="utf-8")


def add_parser(sub: Any) -> None:
    config = sub.add_parser("config", help="print the example peer.toml, or check a config file")
    config.add_argument("--example", action="store_true", help="print the commented example (every key, its default)")
    config.add_argument("--check", type=Path, metavar="FILE", help="load FILE as `yasearch peer --config` would")
    config.set_defaults(func=cmd_config)


async def cmd_config(args: argparse.Namespace) -> int:
    if args.check:
        try:
            Config.load(args.check)
        except ConfigError as e:
            print(f"yasearch config: {e}", file=sys.stderr)
            return 2
        print(f"{args.check}: ok")
        return 0
    if not args.example:
        print("yasearch config: give --example (print the example) or --check FILE", file=sys.stderr)
        return 2
    sys.stdout.write(example())
    return 0
