"""The ``camlab`` console command: thin argument parsing that calls the package modules.

Each area registers its subcommands from a light module in ``camlab/commands/`` (heavy imports happen inside the
handlers, so ``camlab --help`` stays fast). Groups shared by several areas (``train``, ``eval``, ``export``) are
created here; an area adds its leaf, e.g. ``camlab train detector``. User errors
(:class:`camlab.errors.CamlabError`) print one line and exit 2, without a traceback. A bare ``camlab`` prints this
help (exit 0); a group without its command (``camlab train``) prints the group's help on stderr (exit 2).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from camlab.errors import CamlabError

# Modules exposing ``register(cli: CommandRegistry) -> None``.
COMMAND_MODULES: list[str] = [
    "camlab.commands.isp",
    "camlab.commands.cry",
    "camlab.commands.detector",
    "camlab.commands.deploy",
    "camlab.commands.demo",
    "camlab.commands.tune",
]

GROUPS = {
    "train": "train a model (MLflow-logged checkpoints)",
    "eval": "evaluate a checkpoint or an export bundle, write JSON metrics",
    "export": "INT8-quantize and export a checkpoint into a firmware bundle",
}


class CommandRegistry:
    """Hands areas the top-level subparsers and the shared groups' subparsers."""

    def __init__(self, parser: argparse.ArgumentParser):
        self.root = parser.add_subparsers(dest="command", metavar="COMMAND")
        self._groups: dict[str, argparse._SubParsersAction] = {}

    def group(self, name: str) -> argparse._SubParsersAction:
        """Sub-subparsers of a shared group (``train``/``eval``/``export``)."""
        if name not in self._groups:
            p = self.root.add_parser(name, help=GROUPS[name], description=GROUPS[name])
            sub = p.add_subparsers(dest=f"{name}_what", metavar="WHAT")
            p.set_defaults(func=_group_help(p))
            self._groups[name] = sub
        return self._groups[name]


def _group_help(parser: argparse.ArgumentParser):
    """Handler of a group named without its command: its help on stderr, exit 2."""
    def show(_args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2
    return show


def build_parser() -> argparse.ArgumentParser:
    from camlab import __version__

    parser = argparse.ArgumentParser(
        prog="camlab", description="camlab workbench: ISP, datasets, training, evaluation, INT8 export, validation.")
    parser.add_argument("--version", action="version", version=f"camlab {__version__}")
    registry = CommandRegistry(parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(registry)
    return parser


def quiet_progress_when_logged() -> None:
    """When stderr is not a terminal (a log file, CI), switch off tqdm bars drawn outside camlab's ``progress``
    helper (which prints one line per pass instead) through tqdm's ``TQDM_DISABLE`` default; child processes
    inherit it. An explicit ``TQDM_DISABLE`` in the environment wins."""
    import os

    isatty = getattr(sys.stderr, "isatty", None)
    if not (isatty and isatty()):
        os.environ.setdefault("TQDM_DISABLE", "1")


def main(argv: list[str] | None = None) -> int:
    quiet_progress_when_logged()
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:  # bare `camlab`
        parser.print_help()
        return 0
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
