"""The installed genmatch version, from the package metadata (``importlib.metadata``)."""

from __future__ import annotations


def genmatch_version() -> str:
    """``genmatch``'s version string, or ``0.0.0+unknown`` when running from a source tree without install."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("genmatch")
    except PackageNotFoundError:  # pragma: no cover
        return "0.0.0+unknown"
