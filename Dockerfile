# The dialer image: one image for every dialer process in docker-compose.yml
# (migrate, dispatcher, worker, api and the sandbox PBX), told apart by the command.
#
# Two stages. The first builds the high-capacity SIP engine (pjsua2 compiled for 512 calls per
# process on an epoll ioqueue, see README "High-capacity engine") with scripts/build-engine, from
# Debian's pjproject source; the second is the runtime, with that engine instead of the PyPI
# pjsua2 wheel (4 calls per process). Both stages are the same Debian release, so the engine
# links against the libraries the runtime installs.

# ---------------------------------------------------------------- engine build stage
FROM python:3.11-slim-bookworm AS engine
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config swig dpkg-dev xz-utils \
      ca-certificates debian-archive-keyring libssl-dev libspeex-dev libspeexdsp-dev libsrtp2-dev uuid-dev \
 && rm -rf /var/lib/apt/lists/*
COPY scripts/build-engine /usr/local/bin/build-engine
# BuildKit keeps the engine cache between builds: the wheel is rebuilt only when pjproject's
# source in Debian or the build configuration changes.
RUN --mount=type=cache,target=/root/.cache/sip-dialer \
    mkdir -p /engine && cp "$(bash /usr/local/bin/build-engine --wheel-only)" /engine/

# ---------------------------------------------------------------- runtime
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The engine's runtime libraries (the build stage linked against their -dev packages).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 libspeex1 libspeexdsp1 libsrtp2-1 libuuid1 \
 && rm -rf /var/lib/apt/lists/*

# A fixed, unprivileged uid: nothing in the dialer needs root, and a process that
# is compromised through a SIP parser should not own the container.
RUN useradd --create-home --uid 10001 --user-group dialer \
    && install -d -o dialer -g dialer /home/dialer/data  # DIALER_DATA_DIR: a worker's spooled outcomes

# Workers render call flows' `say` prompts with espeak-ng and resample them with sox (worker/prompts.py).
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng sox \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/sip-dialer

# The engine first: a code change then reuses this layer.
COPY --from=engine /engine /tmp/engine
RUN pip install --no-deps /tmp/engine/pjsua2-*.whl && rm -rf /tmp/engine

# Metadata next, then the code. pjsua2-python (the PyPI wheel) is an extra, not installed here:
# both provide the module pjsua2, and the image keeps only the built one.
COPY pyproject.toml README.md LICENSE constraints.txt ./
COPY shared ./shared
COPY producer ./producer
COPY worker ./worker
COPY sandbox ./sandbox
# constraints.txt: the versions the test suite passed with (scripts/lock), not whatever is newest today.
RUN pip install -c constraints.txt .
# Fails the build if the engine does not load or is not the built one.
RUN dialer engine && dialer engine --json | python -c 'import json, sys; assert json.load(sys.stdin)["kind"] == "built"'

# Health probes for compose (the slim image has neither curl nor wget).
COPY --chmod=0755 deploy/docker/healthcheck.py /usr/local/bin/dialer-healthcheck

USER dialer
WORKDIR /home/dialer

ENTRYPOINT ["dialer"]
CMD ["--help"]
