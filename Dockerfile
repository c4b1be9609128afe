# syntax=docker/dockerfile:1
# Seedance video gateway container image.
#
#   docker build -t seedance-gateway .
#   docker run --rm -p 8080:8080 -v gateway-data:/data -e AIHUBMIX_API_KEY seedance-gateway
#
# The image runs as uid 10001 and writes only to /data (SQLite database, blobs, temp files), so it
# works with a read-only root filesystem. Settings: /etc/gateway/config.toml when mounted (it is
# the working directory, and the gateway reads ./config.toml; or pass `--config FILE` after the
# command), then the environment (GATEWAY_<SECTION>__<KEY>, which wins over the file).
# See docs/deploy.md.

ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: build the project's wheel and install it into a self-contained venv ------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
RUN python -m venv /opt/venv

# Dependencies first (pinned in pyproject.toml), so a source-only change reuses this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && /opt/venv/bin/pip install --no-cache-dir --requirement /tmp/requirements.txt

# Then the project itself, as a wheel built from pyproject.toml (no editable install, no sources
# in the runtime image).
COPY README.md ./
COPY gateway ./gateway
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && /opt/venv/bin/pip install --no-cache-dir --no-deps /wheels/*.whl \
    && /opt/venv/bin/gateway --help > /dev/null

# --- runtime: slim Python plus the venv, nothing else ------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="seedance-gateway" \
      org.opencontainers.image.description="OpenAI-compatible gateway for AIHubMix's Seedance video API" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed, non-root uid/gid (10001) so Kubernetes runAsNonRoot can verify it numerically.
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin gateway \
    && mkdir -p /data /etc/gateway \
    && chown 10001:10001 /data \
    && chmod 0750 /data

COPY --from=builder /opt/venv /opt/venv

# HOME and TMPDIR point into /data: with a read-only root filesystem it is the only writable place.
# The database and blob URLs below are defaults; the environment overrides config.toml, so set
# these variables (not config.toml) to move the database or the blobs.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/data \
    TMPDIR=/data \
    GATEWAY_DATABASE__URL=sqlite:////data/gateway.db \
    GATEWAY_STORAGE__URL=file:///data/blobs

# ./config.toml is read when present: mount the settings file at /etc/gateway/config.toml.
WORKDIR /etc/gateway
VOLUME ["/data"]
USER 10001:10001
EXPOSE 8080

# slim has no curl: ask Python. Probes the default port; change it along with --port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["gateway"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
