"""``python -m gateway.sandbox``: run the sandbox upstream as its own process (for benchmarks
and manual runs). Every ``SandboxConfig`` field is a flag (``--poll-shape ark``)."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence

import uvicorn

from gateway.sandbox.app import create_sandbox_app
from gateway.sandbox.config import SandboxConfig


def parse_args(argv: Sequence[str] | None = None) -> tuple[SandboxConfig, str, int]:
    """The config, host and port the command line asks for."""
    parser = argparse.ArgumentParser(prog="python -m gateway.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    defaults = SandboxConfig()
    for field in dataclasses.fields(SandboxConfig):
        default = getattr(defaults, field.name)
        kind = type(default) if default is not None else str
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=kind, default=default)
    args = vars(parser.parse_args(argv))
    host, port = args.pop("host"), args.pop("port")
    return SandboxConfig(**args), host, port


def main(argv: Sequence[str] | None = None) -> None:
    config, host, port = parse_args(argv)
    uvicorn.run(
        create_sandbox_app(config),
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        access_log=False,
    )


if __name__ == "__main__":
    main()
