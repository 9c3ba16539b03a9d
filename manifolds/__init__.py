"""genmatch.manifolds: state spaces, probability paths, generators, losses and samplers.

Pure math: knows nothing of proteins or crystals (GM = Generator Matching, KO = kinetic-optimal DFM).
"""
