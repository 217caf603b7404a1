"""``globalmart`` command line: ``globalmart platform up|down|status``."""

from __future__ import annotations

import argparse
import sys

from globalmart.platform import launcher


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="globalmart", description="GlobalMart analytics platform")
    commands = parser.add_subparsers(dest="command", required=True)
    platform = commands.add_parser("platform", help="the local platform (every service a local process)")
    platform.add_argument("action", choices=["up", "down", "status"])
    args = parser.parse_args(argv)

    if args.command == "platform":
        try:
            if args.action == "up":
                launcher.up()
            elif args.action == "down":
                launcher.down()
            else:
                return 0 if launcher.status() else 1
        except launcher.PlatformError as exc:
            print(f"[platform] error: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
