# The dialer image: one image for every dialer process in docker-compose.yml
# (migrate, dispatcher, worker, api and the sandbox PBX), told apart by the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed, unprivileged uid: nothing in the dialer needs root, and a process that
# is compromised through a SIP parser should not own the container.
RUN useradd --create-home --uid 10001 --user-group dialer

# Workers render call flows' `say` prompts with espeak-ng and resample them with sox (worker/prompts.py).
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng sox \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/sip-dialer

# Metadata first: a code change then reuses the dependency layer, which holds the
# large pjsua2-python wheel.
COPY pyproject.toml README.md constraints.txt ./
COPY shared ./shared
COPY producer ./producer
COPY worker ./worker
COPY sandbox ./sandbox
# constraints.txt: the versions the test suite passed with (scripts/lock), not whatever is newest today.
RUN pip install -c constraints.txt .

# Health probes for compose (the slim image has neither curl nor wget).
COPY --chmod=0755 deploy/docker/healthcheck.py /usr/local/bin/dialer-healthcheck

USER dialer
WORKDIR /home/dialer

ENTRYPOINT ["dialer"]
CMD ["--help"]
