"""Teams and gateway keys: creating, listing, revoking, and authenticating a bearer token.

Authentication is on every request, so lookups are cached in memory for a short time (the
database stays the truth; a revoke in this process clears the cache at once).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.domain.api_keys import generate_key, hash_key, is_well_formed
from gateway.domain.teams import team_name_problem
from gateway.errors import AuthenticationFailed, InvalidRequest, NotFound
from gateway.store.base import ApiKey, KeyStore, Team

# Who changed teams and keys, one line each (budgets log to the same logger: services/budgets.py).
audit_log = logging.getLogger("gateway.audit")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key and the team it belongs to."""

    key_id: str
    team_id: str


class KeyService:
    def __init__(
        self,
        store: KeyStore,
        *,
        clock: Callable[[], float] = time.time,
        cache_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}

    async def authenticate(self, authorization: str | None) -> Principal:
        """The principal for an ``Authorization`` header value, or ``AuthenticationFailed``."""
        if not authorization:
            raise AuthenticationFailed(
                "You didn't provide an API key. Send it as 'Authorization: Bearer gw-...'."
            )
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationFailed("Malformed Authorization header: use 'Bearer gw-...'.")
        if not is_well_formed(token):
            raise AuthenticationFailed(
                "Incorrect API key provided: malformed gateway key (a gateway key is 'gw-'"
                " followed by 43 letters, digits, '-' or '_'; check it was copied whole)."
            )
        key = await self._lookup(hash_key(token))
        if key is None:
            raise AuthenticationFailed("Incorrect API key provided.")
        if not key.active:
            raise AuthenticationFailed("This API key has been revoked.")
        return Principal(key_id=key.id, team_id=key.team_id)

    async def _lookup(self, key_hash: str) -> ApiKey | None:
        now = self._monotonic()
        hit = self._cache.get(key_hash)
        if hit is not None and hit[0] > now:
            return hit[1]
        key = await self._store.key_by_hash(key_hash)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key_hash] = (now + self._cache_seconds, key)
        return key

    async def create_team(self, name: str, *, actor: str = "unknown") -> Team:
        problem = team_name_problem(name)
        if problem is not None:
            raise InvalidRequest(problem, param="name")
        team = await self._store.create_team(name, int(self._clock()))
        audit_log.info("team created", extra={"actor": actor, "team_id": team.id, "team": name})
        return team

    async def create_key(
        self, team_name: str, name: str = "", *, actor: str = "unknown"
    ) -> tuple[ApiKey, str]:
        """Create a key for a team; returns the stored key and the plaintext (shown once)."""
        team = await self._store.team_by_name(team_name)
        if team is None:
            raise NotFound(f"No team named {team_name!r}.", param="team")
        new = generate_key()
        key = await self._store.create_key(
            team_id=team.id,
            name=name,
            key_hash=new.key_hash,
            prefix=new.prefix,
            now=int(self._clock()),
        )
        audit_log.info(
            "key created",
            extra={"actor": actor, "team_id": team.id, "key_id": key.id, "prefix": key.prefix},
        )
        return key, new.plaintext

    async def revoke_key(self, key_id: str, *, actor: str = "unknown") -> None:
        if not await self._store.revoke_key(key_id, int(self._clock())):
            raise NotFound(f"No active key with id {key_id!r}.", param="key_id")
        self._cache.clear()
        audit_log.info("key revoked", extra={"actor": actor, "key_id": key_id})
