"""Helpers shared by the pipeline stages: content hashes, the on-disk cache, atomic output,
structure input and process / dask fan-out."""
