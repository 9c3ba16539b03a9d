"""genmatch.pipeline: networks and the generate / relax / score stages."""
