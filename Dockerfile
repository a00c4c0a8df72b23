# The image every Airflow service and the editor run in: the pinned lock, the dev tools the editor
# needs (debugpy, ruff, pytest), a non-root user, and no secret (they come from .env at run time).
#   docker compose build            (or let "Reopen in Container" / `docker compose up` build it)
ARG PYTHON_VERSION=3.11
ARG PYTHON_BASE=python:${PYTHON_VERSION}-slim-bookworm
FROM ${PYTHON_BASE}

# curl: healthchecks; git: the editor; procps: ps/kill in the terminal and for debugging task processes.
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl git procps \
    && rm -rf /var/lib/apt/lists/*

ARG AIRFLOW_UID=50000
# The user's own group as its primary group: the Dev Containers CLI gives the editor user your UID and
# GID by rewriting the GID of its primary group in /etc/group, which with GID 0 would be the root group
# (scripts/updateUID.Dockerfile of devcontainers/cli). Member of group 0 too, as in the official Airflow
# image, so any UID the entrypoint switches to can use the group-writable directories below.
RUN groupadd --gid "${AIRFLOW_UID}" airflow \
    && useradd --uid "${AIRFLOW_UID}" --gid airflow --groups 0 --create-home --home-dir /home/airflow \
        --shell /bin/bash airflow \
    && mkdir -p /opt/airflow /opt/localflow \
    && chown -R "${AIRFLOW_UID}:0" /opt/airflow && chmod -R g+rwX /opt/airflow /home/airflow

# The lock, with the dev tools; compiled bytecode saves ~2 s per Airflow process start. AIRFLOW_VERSION
# (compose: LOCALFLOW_AIRFLOW_VERSION of .env) another release's, from locks/airflow-X.Y.Z/ (docs/releases.md).
ARG AIRFLOW_VERSION=
COPY requirements.txt requirements-dev.txt /tmp/lock/
COPY locks /tmp/lock/locks
RUN lock=/tmp/lock; \
    if [ -n "${AIRFLOW_VERSION}" ] && ! grep -qx "apache-airflow==${AIRFLOW_VERSION}" /tmp/lock/requirements.txt; then \
        lock="/tmp/lock/locks/airflow-${AIRFLOW_VERSION}"; \
        [ -f "${lock}/requirements.txt" ] || { echo "localflow: no locks/airflow-${AIRFLOW_VERSION}/: run \`python3 -m localflow secrets\` natively once, which makes it (docs/releases.md)." >&2; exit 1; }; \
    fi \
    && pip install --no-cache-dir --disable-pip-version-check "$(grep '^uv==' "${lock}/requirements-dev.txt")" \
    && uv pip install --system --no-cache --no-deps --compile-bytecode \
        -r "${lock}/requirements.txt" -r "${lock}/requirements-dev.txt" \
    && rm -rf /tmp/lock

# Remote task logs on S3 (docs/logs.md): compose sets INSTALL_S3 while .env sets LOCALFLOW_REMOTE_LOGS.
# A layer of its own, so that turning it on or off leaves the lock's layer above as it is.
ARG INSTALL_S3=
COPY requirements-s3.txt /tmp/lock/
COPY locks /tmp/lock/locks
RUN if [ -n "${INSTALL_S3}" ]; then \
        lock=/tmp/lock; [ -d "/tmp/lock/locks/airflow-${AIRFLOW_VERSION}" ] && lock="/tmp/lock/locks/airflow-${AIRFLOW_VERSION}"; \
        uv pip install --system --no-cache --no-deps --compile-bytecode -r "${lock}/requirements-s3.txt"; \
    fi \
    && rm -rf /tmp/lock

# Your packages (requirements-user.txt, locked against the lock above: docs/packages.md). Last, in a
# layer of its own: after `python -m localflow add`, a rebuild redoes this layer only.
COPY requirements-user.txt /tmp/lock/
RUN uv pip install --system --no-cache --no-deps --compile-bytecode -r /tmp/lock/requirements-user.txt \
    && rm -rf /tmp/lock

# The workspace tooling (entrypoint, secrets hook, init). The workspace itself is bind-mounted.
COPY localflow /opt/localflow/localflow
ENV PYTHONPATH=/opt/localflow \
    LOCALFLOW_CONTAINER=1 \
    AIRFLOW_HOME=/opt/airflow \
    PIP_DISABLE_PIP_VERSION_CHECK=1

USER airflow
WORKDIR /opt/airflow
ENTRYPOINT ["python", "-m", "localflow.container.entrypoint"]
CMD ["airflow", "version"]
