"""A service over one port: a test fake implements only the part of the store it needs
(here ``KeyStore``, eight methods), not the whole ``Store``."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.domain.api_keys import generate_key, hash_key
from gateway.errors import AuthenticationFailed
from gateway.services.keys import KeyService, Principal
from gateway.store.base import ApiKey, KeyStore, Team


class MemoryKeys:
    """Teams and keys in a dict: enough for ``KeyService``."""

    def __init__(self) -> None:
        self.teams: dict[str, Team] = {}
        self.keys: dict[str, tuple[str, ApiKey]] = {}  # id -> (hash, key)
        self.lookups = 0

    async def create_team(self, name: str, now: int) -> Team:
        team = Team(id=f"team_{len(self.teams)}", name=name, created_at=now)
        self.teams[team.id] = team
        return team

    async def team_by_name(self, name: str) -> Team | None:
        return next((t for t in self.teams.values() if t.name == name), None)

    async def team_by_id(self, team_id: str) -> Team | None:
        return self.teams.get(team_id)

    async def list_teams(self) -> list[Team]:
        return list(self.teams.values())

    async def create_key(
        self, *, team_id: str, name: str, key_hash: str, prefix: str, now: int
    ) -> ApiKey:
        key = ApiKey(
            id=f"key_{len(self.keys)}", team_id=team_id, name=name, prefix=prefix, created_at=now
        )
        self.keys[key.id] = (key_hash, key)
        return key

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        self.lookups += 1
        return next((k for h, k in self.keys.values() if h == key_hash), None)

    async def list_keys(self, team_id: str | None = None) -> list[ApiKey]:
        return [k for _, k in self.keys.values() if team_id in (None, k.team_id)]

    async def revoke_key(self, key_id: str, now: int) -> bool:
        found = self.keys.get(key_id)
        if found is None or not found[1].active:
            return False
        hashed, key = found
        self.keys[key_id] = (hashed, dataclasses.replace(key, revoked_at=now))
        return True


async def test_key_service_runs_on_a_fake_of_its_port_alone() -> None:
    store: KeyStore = MemoryKeys()  # mypy checks the fake against the port
    clock = [0.0]
    service = KeyService(store, clock=lambda: 1000.0, cache_seconds=5.0, monotonic=lambda: clock[0])
    team = await store.create_team("acme", 1000)
    new = generate_key()
    key = await store.create_key(
        team_id=team.id, name="ci", key_hash=hash_key(new.plaintext), prefix="gw-x", now=1000
    )

    header = f"Bearer {new.plaintext}"
    assert await service.authenticate(header) == Principal(key_id=key.id, team_id=team.id)
    assert await service.authenticate(header) == Principal(key_id=key.id, team_id=team.id)
    assert isinstance(store, MemoryKeys) and store.lookups == 1  # the second came from the cache

    assert await store.revoke_key(key.id, 1001)
    clock[0] = 6.0  # the cached answer expired
    with pytest.raises(AuthenticationFailed, match="revoked"):
        await service.authenticate(header)
