"""The ``camlab`` console command: thin argument parsing that calls the package modules.

Each area registers its subcommands from a light ``commands`` module (heavy imports happen inside the handlers, so
``camlab --help`` stays fast). User errors (:class:`camlab.errors.CamlabError`) print one line and exit 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from camlab.errors import CamlabError

# Modules exposing ``register(subparsers) -> None``; each adds its subcommands with ``func=handler`` defaults.
COMMAND_MODULES: list[str] = [
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="camlab", description="camlab workbench: ISP, datasets, training, evaluation, INT8 export, validation.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except CamlabError as exc:
        print(f"camlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("camlab: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
