"""The model catalog: which Seedance models exist, what each accepts, and the request-wide limits.

Pure data with defaults taken from the upstream facts (shared/upstream-api.md); settings may
override bounds and add aliases. No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

RATIOS: tuple[str, ...] = ("16:9", "9:16", "1:1", "4:3", "3:4", "21:9")
RESOLUTIONS: tuple[str, ...] = ("480p", "720p", "1080p")
MAX_PROMPT_CHARS = 4000
MAX_IMAGES = 9
MAX_VIDEOS = 3
MAX_AUDIOS = 3
SEED_MIN = -1
SEED_MAX = 2**32 - 1

DEFAULT_RATIO = "16:9"
DEFAULT_RESOLUTION = "720p"
DEFAULT_DURATION = 5
DEFAULT_MAX_CHAINED_SECONDS = 60

# Output pixel size per resolution (short side) used to render the OpenAI ``size`` (WxH).
SHORT_SIDE: Mapping[str, int] = {"480p": 480, "720p": 720, "1080p": 1080}


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What one upstream model accepts."""

    id: str
    resolutions: tuple[str, ...]
    min_duration: int = 2
    max_duration: int = 15
    default_watermark: bool = False
    supports_reference_image: bool = True
    returns_last_frame: bool = True  # can chain segments through last frames


@dataclass(frozen=True, slots=True)
class Catalog:
    """Known models by id plus aliases (alias -> model id)."""

    models: Mapping[str, ModelSpec]
    aliases: Mapping[str, str] = field(default_factory=dict)

    def resolve(self, name: str) -> ModelSpec | None:
        """The model a client-supplied name refers to (an id or an alias), or None."""
        spec = self.models.get(name)
        if spec is not None:
            return spec
        target = self.aliases.get(name)
        return self.models.get(target) if target is not None else None

    def names(self) -> list[str]:
        """Every accepted model name, ids first, for error messages."""
        return [*self.models, *(a for a in self.aliases if a not in self.models)]


DEFAULT_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("doubao-seedance-2-0-260128", ("480p", "720p")),
    ModelSpec("doubao-seedance-2-0-fast-260128", ("480p", "720p")),
    ModelSpec(
        "doubao-seedance-1-5-pro-251215",
        ("480p", "720p", "1080p"),
        supports_reference_image=False,
    ),
    ModelSpec(
        "doubao-seedance-1-0-pro-250528",
        ("480p", "720p", "1080p"),
        supports_reference_image=False,
    ),
    ModelSpec(
        "doubao-seedance-1-0-pro-fast-251015",
        ("480p", "720p", "1080p"),
        supports_reference_image=False,
    ),
)


def default_catalog(aliases: Mapping[str, str] | None = None) -> Catalog:
    """The catalog with upstream defaults and the given aliases."""
    return Catalog(models={m.id: m for m in DEFAULT_MODELS}, aliases=dict(aliases or {}))


def size_for(ratio: str, resolution: str) -> str:
    """The OpenAI ``size`` string (WxH) for a ratio and resolution, e.g. 16:9/720p -> 1280x720."""
    w, h = (int(x) for x in ratio.split(":"))
    short = SHORT_SIDE[resolution]
    long = 2 * round(short * max(w, h) / min(w, h) / 2)  # nearest even pixel count
    width, height = (long, short) if w >= h else (short, long)
    return f"{width}x{height}"
