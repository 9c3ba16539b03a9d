"""genmatch.manifolds: state spaces, probability paths, generators, losses and samplers.

Pure math: knows nothing of proteins or crystals (GM = Generator Matching, KO = kinetic-optimal DFM).

Map (one place per concept):

* ``base`` - ProbabilityPath / ConditionalGenerator (GM sections 3-5), posterior-average helpers;
* ``spaces`` - how flows move points (R^d, SO(3)); ``so3`` - batched exp/log/geodesics/Haar/IGSO(3);
* ``paths`` - AffineGaussianPath (CondOT), UniformMixturePath, GeodesicSO3Path (linear / exp rate), VMFSO3Path;
* ``generators`` - FlowGenerator, DensityJumpGenerator (GM eq. 13 in general form), PureDiffusionGenerator (GM eq. 14);
* ``superposition`` (GM Prop. 3), ``product`` (GM Prop. 4), ``samplers`` (Euler, Heun, mixed; time grids),
  ``losses`` (Bregman divergences, GM eq. 15 / Table 1), ``oracle`` (exact posterior over a finite data set, distances);
* ``discrete`` - finite state spaces (CTMCs, KO).
"""
