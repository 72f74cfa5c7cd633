"""``mmemolr`` entry point: builds the parser from one module per subcommand."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Each module defines ``register(subparsers)`` and sets ``func`` on its parser(s).
COMMAND_MODULES = [
    "mmemolr.cli.corpus",
    "mmemolr.cli.features",
    "mmemolr.cli.extract",
    "mmemolr.cli.train",
    "mmemolr.cli.evaluate",
    "mmemolr.cli.predict",
    "mmemolr.cli.compare",
    "mmemolr.cli.report",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmemolr",
        description="Multimodal emotion recognition in conversations with EmoLR label refinement.\n"
        "Pipeline: corpus prepare -> extract -> train -> compare -> report.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging and full tracebacks")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, PermissionError, OSError, RuntimeError) as err:
        if args.verbose:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
