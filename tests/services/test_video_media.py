"""A finished video's probed figures are read from the database once per process: an asset is
named by its bytes' sha256, so its figures never change, and repeated status polls of a
finished video then read only its job row."""

from __future__ import annotations

from collections.abc import Collection

import pytest

from gateway.domain.media import MediaFacts

from .support import World


async def test_media_figures_are_read_once_and_stay_right(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = await world.settle((await world.create(seed=1)).id)
    other = await world.settle((await world.create(seed=2)).id)
    running = await world.create(seed=3)
    asked: list[set[str]] = []
    read = world.store.asset_media

    async def counted(keys: Collection[str]) -> dict[str, MediaFacts]:
        asked.append(set(keys))
        return await read(keys)

    monkeypatch.setattr(world.store, "asset_media", counted)
    first = await world.videos.media_of([done])
    assert first[done.id] == (await read([done.video_asset or ""]))[done.video_asset or ""]
    assert await world.videos.media_of([done]) == first
    assert asked == [{done.video_asset}]  # the second poll did not ask the database
    both = await world.videos.media_of([done, other, running])
    assert set(both) == {done.id, other.id}  # a running job has no stored video yet
    assert asked[1:] == [{other.video_asset}]  # only what was not known yet
