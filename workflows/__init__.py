"""genmatch workflows: the command line and the Python entry points for scripts and batch runs."""

from structures.version import genmatch_version

__version__ = genmatch_version()
