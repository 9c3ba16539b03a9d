"""genmatch.structures: proteins and crystals as data (files, frames, tokens, data sets). Knows no models."""
