"""The ``bayesfm`` command line: thin wiring around the package's functions."""

from bayesfm.cli.main import main

__all__ = ["main"]
