"""Property-based fuzzing of POST /v1/videos over real HTTP: never a 5xx, and an invalid body
never reaches the upstream."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import GatewayHandle, SandboxHandle

FIELDS = [
    "model",
    "prompt",
    "content",
    "ratio",
    "resolution",
    "duration",
    "generate_audio",
    "return_last_frame",
    "seed",
    "watermark",
    "seconds",
    "size",
    "input_reference",
    "resoluton",
]
MODELS = ["doubao-seedance-2-0-260128", "doubao-seedance-1-0-pro-fast-251015", "sora-2", ""]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from([*MODELS, "16:9", "720p", "1080p", "1280x720", "5", "true", "first_frame"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["type", "role", "url", "image_url", "video_url"])
            | st.text(max_size=8),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)
json_bodies = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=10), json_values, max_size=8
)
form_names = st.sampled_from(
    [
        *FIELDS,
        "content[][type]",
        "content[][role]",
        "content[][image_url][url]",
        "content[0][type]",
        "a[b]",
        "x[]",
    ]
)
form_bodies = st.lists(st.tuples(form_names, st.text(max_size=40)), max_size=10)


class Tally:
    accepted = 0
    upstream_rejected = 0


def check(resp: Any, tally: type[Tally]) -> None:
    assert resp.status_code < 500, resp.text
    if resp.status_code == 200:
        tally.accepted += 1
    else:
        error = resp.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        if error["code"] == "upstream_rejected":
            tally.upstream_rejected += 1


def test_fuzz_json_and_multipart(gateway: GatewayHandle, sandbox: SandboxHandle):
    headers = {"Authorization": f"Bearer {gateway.new_key()}"}

    class T(Tally):
        pass

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=json_bodies)
    def json_case(body: dict[str, Any]) -> None:
        check(gateway.http.post("/v1/videos", json=body, headers=headers), T)

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(parts=form_bodies)
    def form_case(parts: list[tuple[str, str]]) -> None:
        files = [(name, (None, value)) for name, value in parts] or [("prompt", (None, ""))]
        check(gateway.http.post("/v1/videos", files=files, headers=headers), T)

    json_case()
    form_case()
    assert sandbox.stats()["create"] == T.accepted + T.upstream_rejected
