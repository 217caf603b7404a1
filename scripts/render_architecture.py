"""Renders the architecture diagram: docs/architecture.dot → docs/architecture.svg (Graphviz's
``dot``, a Debian package `make setup` installs). ``make docs`` runs it.

The SVG records the SHA-256 of the source it was rendered from, so a test
(tests/unit/test_architecture_diagram.py) fails when the source changed and the rendering did not.
``--check`` exits 1 when the rendering is stale.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "docs" / "architecture.dot"
TARGET = ROOT / "docs" / "architecture.svg"
STAMP = re.compile(r"<!-- rendered from docs/architecture\.dot sha256:([0-9a-f]{64}) -->")


def source_digest(source: Path = SOURCE) -> str:
    return hashlib.sha256(source.read_bytes()).hexdigest()


def rendered_digest(target: Path = TARGET) -> str | None:
    match = STAMP.search(target.read_text()) if target.exists() else None
    return match.group(1) if match else None


def render(source: Path = SOURCE) -> str:
    svg = subprocess.run(["dot", "-Tsvg", str(source)], capture_output=True, text=True, check=True).stdout
    stamp = f"<!-- rendered from docs/architecture.dot sha256:{source_digest(source)} -->"
    head, _, body = svg.partition("\n<svg")  # after the XML declaration and doctype, before <svg>
    return f"{head}\n{stamp}\n<svg{body}"


def main(argv: list[str]) -> int:
    if "--check" in argv:
        if rendered_digest() != source_digest():
            print(f"{TARGET.relative_to(ROOT)} is stale: run `make docs`", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(render())
    print(f"rendered {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
