"""Exceptions that tell the user what was wrong with their input and what to do."""

__all__ = ["DataError", "MissingDataPackageError"]


class DataError(ValueError):
    """Input data that bayesfm cannot use as given (bad values, shapes, names)."""


class MissingDataPackageError(ImportError):
    """A package that holds data bayesfm needs is not installed."""
