"""An Idempotency-Key's binding to the video its first request created: an expired binding is
forgotten, a live one refuses a new one (and answers the retry with its video).

Pure: the adapters read the binding stored for a (calling key, Idempotency-Key) pair under
their locks, and write what ``binding`` says.
"""

from __future__ import annotations

from typing import Literal

# ``bind``: no binding is stored; ``replace``: the stored one has expired, forget it and bind;
# ``refuse``: the stored one is live, nothing is created.
Binding = Literal["bind", "replace", "refuse"]


def is_live(expires_at: float, now: float) -> bool:
    """A binding holds strictly before its expiry; at ``expires_at`` it is forgotten."""
    return now < expires_at


def binding(stored_expires_at: float | None, now: float) -> Binding:
    """What binding a key does, given the expiry of the binding stored for it (None: none)."""
    if stored_expires_at is None:
        return "bind"
    return "refuse" if is_live(stored_expires_at, now) else "replace"
