"""Seedance video gateway: an OpenAI-compatible caching reverse proxy for AIHubMix's video API."""

__version__ = "0.1.0"
