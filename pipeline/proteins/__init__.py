"""Proteins in the pipeline: the product flow on R^3N x SO(3)^N x [21]^N (GM Prop. 4), MultiFlow's network, and
the stages.

- :mod:`.flow`, :mod:`.sequence`: the product path and its generators, shared by training and sampling.
- :mod:`.network`: MultiFlow's FlowModel behind typed dataclasses; MultiFlow and genmatch model files.
- :mod:`.sampler`, :mod:`.generate`: the sampler and resumable generation runs.
- :mod:`.train`: training with MultiFlow's objective (Lightning).
- :mod:`.score`: geometry, DSSP, designability or its offline proxies, diversity, novelty.

The crystal twin is :mod:`pipeline.crystals`, room for room.
"""
