"""genrun: a config-driven experiment runner for deep generative models."""

__version__ = "0.1.0"
