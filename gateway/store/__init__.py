"""Persistence: the ``Store`` port (``base``) and its database adapters, picked by URL scheme."""

from __future__ import annotations

from gateway.store.base import Store
from gateway.store.opening import open_store

__all__ = ["Store", "open_store"]
