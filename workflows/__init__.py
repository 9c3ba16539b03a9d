"""genmatch workflows: the command line and the Python entry points for scripts and batch runs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("genmatch")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
