"""The `syncd` executable (and `python -m syncd`): `syncd --version` is answered here,
without loading the command line and the engine behind it (a second, not a tenth).
Everything else goes to `syncd.cli.main`.
"""

from __future__ import annotations

import sys

VERSION_FLAGS = (["--version"], ["-V"])


def version_line() -> str:
    """Return `syncd <version>` from the installed package's metadata."""
    from importlib.metadata import PackageNotFoundError, version  # only when asked: 20 ms

    try:
        return f"syncd {version('syncd')}"
    except PackageNotFoundError:  # a source tree that was never installed
        return "syncd unknown (not installed)"


def main() -> None:
    """Print the version for `--version`/`-V` alone; otherwise run the CLI."""
    if sys.argv[1:] in VERSION_FLAGS:
        sys.stdout.write(version_line() + "\n")
        return
    from syncd.cli import main as cli_main

    cli_main()
