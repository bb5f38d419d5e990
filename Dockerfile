# SPDX-License-Identifier: MIT
# Dockerfile — builds errand and the structured-output example once, then makes one small
# runtime image per service of compose.yaml, as the seed's multi-stage Dockerfile does:
#   server  `errand server start`            (the errand API, port 4200)
#   task    `structured-output-task`         (a task worker serving create_structured_output)
#   api     `structured-output-api`          (the example web API, port 8000)
# and, for compose.postgres.yaml (two servers on PostgreSQL, results in S3), two more:
#   postgres  PostgreSQL 15 from Debian       (port 5432, data in a volume)
#   s3        s3rver from npm, an S3 stand-in (port 4568, objects in a volume)
# and, for compose.fastapi.yaml (the same app in Python: FastAPI, errand.serve), two more:
#   fastapi-task  `python3 tasks.py`          (a Python task worker, errand.serve)
#   fastapi-api   `python3 api.py`            (the FastAPI web API under uvicorn, port 8000)
# compose.yaml picks one per service with `build.target`; by hand:
#   docker build --target server -t errand-server .
#   podman build --network host --target server -t errand-server .
# The compilers and -dev packages stay in the `build` stage; the runtime stages get only the
# shared libraries the binaries link, and run as an unprivileged user.
#
# Every image carries OCI labels (org.opencontainers.image.*): version, revision and source
# come from these build arguments, which tests/container/run.sh passes:
#   --build-arg ERRAND_VERSION=$(scripts/version.sh)      the release, from CHANGELOG.md
#   --build-arg ERRAND_REVISION=$(git rev-parse HEAD)     the commit built
#   --build-arg ERRAND_SOURCE=<repository URL>            where that commit lives
# An image built without them is labelled version "unknown" and revision "unknown", with an
# empty source; `errand --version` inside it still prints the release it was compiled from.
# They are used only by the last, label-only layers of each stage, so a new commit does not
# invalidate the cached compile or apt-get layers. Each of those stages runs `RUN true` before
# its LABEL: podman (buildah) keys a cached LABEL layer on the instruction's text, not on the
# values its ARGs expand to, and would keep an earlier build's version and revision; a RUN is
# keyed on the stage's build arguments, so the labels after it follow them (Docker keys both).
# The server, task, api, fastapi-task and fastapi-api images check their own health with
# `errand health` (HEALTHCHECK; podman keeps it only in images built with
# `podman build --format docker`).
ARG ERRAND_VERSION=unknown
ARG ERRAND_REVISION=unknown
ARG ERRAND_SOURCE=

# ---- build: compile everything (never shipped) ----------------------------------------------
FROM debian:bookworm-slim AS build
LABEL org.opencontainers.image.title="errand" \
      org.opencontainers.image.description="errand build stage (compilers; not shipped)"
WORKDIR /src
# The package list lives in one place, scripts/install-deps.sh. Copying only that script first
# keeps this layer cached until the list itself changes.
COPY scripts/install-deps.sh scripts/
RUN scripts/install-deps.sh build && rm -rf /var/lib/apt/lists/*
COPY . .
# Unit tests are not built here (they need cmocka and are run by `make test`, not in images).
RUN make BUILD=build CMAKE_FLAGS="-DERRAND_BUILD_TESTS=OFF -DERRAND_BUILD_EXAMPLES=ON" \
 && mkdir -p /out/bin \
 && for b in errand structured-output-api structured-output-task; do \
      test -x "build/bin/$b" || { echo "Dockerfile: build/bin/$b was not built" >&2; exit 1; }; \
      strip --strip-debug -o "/out/bin/$b" "build/bin/$b"; \
    done

# ---- base: what every service needs at run time ---------------------------------------------
FROM debian:bookworm-slim AS base
LABEL org.opencontainers.image.title="errand" \
      org.opencontainers.image.description="errand: a background-task platform in C (server, worker, example app)"
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libmicrohttpd12 libcurl4 libjansson4 libsqlite3-0 libssl3 libpq5 libicu72 ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
# /data holds the server's SQLite database (ERRAND_HOME); /task-storage the persisted task
# results, shared by the task workers and the api. Both are owned by the service user, so a
# fresh named volume mounted there starts out writable for it.
ARG ERRAND_UID=10001
RUN groupadd --gid "$ERRAND_UID" errand \
 && useradd --uid "$ERRAND_UID" --gid errand --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin errand \
 && mkdir -p /data /task-storage \
 && chown errand:errand /data /task-storage
COPY --from=build /out/bin/ /usr/local/bin/
# Fail the image build, not the first container start, when a runtime library is missing.
RUN if ldd /usr/local/bin/* | grep 'not found'; then \
      echo "Dockerfile: a library above is missing from the base stage's apt-get list" >&2; \
      exit 1; \
    fi
ENV ERRAND_HOME=/data
WORKDIR /data
USER errand

# ---- the services compose.postgres.yaml adds: PostgreSQL and an S3-compatible store ----------
# Both come from Debian (and npm) on the same local base, like the stages above, so that
# variant needs no container registry either. For real use, replace them with a managed
# PostgreSQL and S3 (docs/deploy.md). They stand before server/task/api so that a build
# without --target still makes the last one, api, as it always did.

# ---- postgres: PostgreSQL 15 from Debian, data in /var/lib/postgresql/data ------------------
FROM debian:bookworm-slim AS postgres
LABEL org.opencontainers.image.title="errand" \
      org.opencontainers.image.description="PostgreSQL 15 (Debian) for errand's compose.postgres.yaml"
# The package would create a cluster "main" under /var/lib/postgresql/15; the entrypoint
# creates one in the data volume at the first start instead, so postgresql-common is told
# not to (it is installed first, for its createcluster.conf).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-common \
 && sed -i 's/^#* *create_main_cluster *=.*/create_main_cluster = false/' \
      /etc/postgresql-common/createcluster.conf \
 && grep -qx 'create_main_cluster = false' /etc/postgresql-common/createcluster.conf \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /run/postgresql \
 && chown postgres:postgres /var/lib/postgresql/data /run/postgresql \
 && chmod 0700 /var/lib/postgresql/data
COPY scripts/container/postgres-entrypoint.sh /usr/local/bin/errand-postgres-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
ARG ERRAND_VERSION
ARG ERRAND_REVISION
ARG ERRAND_SOURCE
RUN true
# The licence is what the image serves, PostgreSQL's; version and revision are errand's,
# whose recipe built it.
LABEL org.opencontainers.image.version="$ERRAND_VERSION" \
      org.opencontainers.image.revision="$ERRAND_REVISION" \
      org.opencontainers.image.source="$ERRAND_SOURCE" \
      org.opencontainers.image.licenses="PostgreSQL" \
      org.opencontainers.image.vendor="errand"
# The server process and the files in the volume belong to the package's `postgres` user.
USER postgres
WORKDIR /var/lib/postgresql
EXPOSE 5432
# SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for every client to disconnect.
STOPSIGNAL SIGINT
# Over TCP, so the socket-only server of the first start's set-up does not count as ready.
# (podman keeps a HEALTHCHECK only with `podman build --format docker`; compose.postgres.yaml
# declares the same check, which podman-compose and docker compose both pass on.)
HEALTHCHECK --interval=5s --timeout=5s --start-period=30s --retries=5 \
  CMD pg_isready -q -h 127.0.0.1 -p 5432
ENTRYPOINT ["errand-postgres-entrypoint"]

# ---- s3rver-build: s3rver from npm (never shipped) -------------------------------------------
# The version of tests/s3/package.json (tests/ is not in the build context). Its own
# dependencies are resolved by npm at build time, from the registry over HTTPS. Behind a
# TLS-intercepting proxy, hand npm the proxy's CA certificate for the build (this is what
# tests/container/run.sh does when NODE_EXTRA_CA_CERTS is set on the host):
#   podman build --network host -v /path/ca.crt:/etc/ssl/certs/extra-ca.crt:ro \
#     --build-arg NODE_EXTRA_CA_CERTS=/etc/ssl/certs/extra-ca.crt --target s3 .
FROM debian:bookworm-slim AS s3rver-build
LABEL org.opencontainers.image.title="errand" \
      org.opencontainers.image.description="s3rver from npm (build stage; not shipped)"
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
ARG S3RVER_VERSION=3.7.1
ARG NODE_EXTRA_CA_CERTS
RUN npm install --global --prefix /opt/s3rver --omit=dev --no-audit --no-fund --no-update-notifier \
      "s3rver@$S3RVER_VERSION" \
 && /opt/s3rver/bin/s3rver --version

# ---- s3: s3rver, an S3-protocol server, objects in /data ------------------------------------
# A stand-in for S3 to try the variant on one machine: it accepts only its built-in account
# (access key id S3RVER) and does not check signatures. Runs on Debian's nodejs alone (npm
# stays in s3rver-build), under tini: node as process 1 would ignore SIGTERM, so every stop
# would wait for the SIGKILL. The bucket is made at start (--configure-bucket, compose's
# command).
FROM debian:bookworm-slim AS s3
LABEL org.opencontainers.image.title="errand" \
      org.opencontainers.image.description="s3rver (an S3-protocol test server) for errand's compose.postgres.yaml"
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs tini \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY --from=s3rver-build /opt/s3rver /opt/s3rver
ARG S3RVER_UID=10002
RUN groupadd --gid "$S3RVER_UID" s3rver \
 && useradd --uid "$S3RVER_UID" --gid s3rver --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin s3rver \
 && mkdir -p /data \
 && chown s3rver:s3rver /data
ENV PATH=/opt/s3rver/bin:$PATH
ARG ERRAND_VERSION
ARG ERRAND_REVISION
ARG ERRAND_SOURCE
RUN true
# s3rver's own licence is MIT too; version and revision are errand's, whose recipe built it.
LABEL org.opencontainers.image.version="$ERRAND_VERSION" \
      org.opencontainers.image.revision="$ERRAND_REVISION" \
      org.opencontainers.image.source="$ERRAND_SOURCE" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.vendor="errand"
USER s3rver
WORKDIR /data
EXPOSE 4568
# Path-style requests only: with vhost buckets on, s3rver would take the host name the
# others use (http://s3:4568) for a bucket name.
ENTRYPOINT ["tini", "--", "s3rver", "--directory", "/data", "--address", "0.0.0.0", "--port", "4568", "--no-vhost-buckets"]
CMD ["--configure-bucket", "errand-results"]

# ---- fastapi-base: base plus Debian's Python, FastAPI and uvicorn, and the FastAPI example ---
# compose.fastapi.yaml's task and api services: examples/fastapi-structured-output, the
# seed's app in Python on errand (errand.serve, the asyncio client). On `base`, so the errand
# CLI is there for the same health checks as the C services; Python from Debian, as `make
# example-fastapi` tests it. The errand package is the stdlib-only clients/python/errand; the
# page is the C example's (the same API, so the same page).
FROM base AS fastapi-base
USER root
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-fastapi python3-uvicorn \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY clients/python/errand/ /opt/errand/clients/python/errand/
COPY examples/structured-output/page.html /opt/errand/examples/structured-output/page.html
COPY examples/fastapi-structured-output/ /opt/errand/examples/fastapi-structured-output/
ENV PYTHONPATH=/opt/errand/clients/python \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER errand
ARG ERRAND_VERSION
ARG ERRAND_REVISION
ARG ERRAND_SOURCE
RUN true
LABEL org.opencontainers.image.version="$ERRAND_VERSION" \
      org.opencontainers.image.revision="$ERRAND_REVISION" \
      org.opencontainers.image.source="$ERRAND_SOURCE" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.vendor="errand"

# ---- fastapi-task: the FastAPI example's Python task worker (errand.serve) ------------------
FROM fastapi-base AS fastapi-task
LABEL org.opencontainers.image.description="errand FastAPI example task worker (Python): serves create_structured_output"
ENV ERRAND_LOCAL_STORAGE_PATH=/task-storage \
    ERRAND_RESULTS_PERSIST_BY_DEFAULT=true \
    ERRAND_LOGGING_LOG_PRINTS=true
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD errand health --timeout-seconds 4
CMD ["python3", "/opt/errand/examples/fastapi-structured-output/tasks.py"]

# ---- fastapi-api: the FastAPI example's web API and page, under uvicorn ---------------------
FROM fastapi-base AS fastapi-api
LABEL org.opencontainers.image.description="errand FastAPI example web API and page (Python, port 8000)"
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD errand health --timeout-seconds 4 --url http://127.0.0.1:8000/health
CMD ["python3", "/opt/errand/examples/fastapi-structured-output/api.py", "--host", "0.0.0.0", "--port", "8000"]

# ---- runtime: base plus the labels of the version built (server, task and api build on it) --
FROM base AS runtime
ARG ERRAND_VERSION
ARG ERRAND_REVISION
ARG ERRAND_SOURCE
RUN true
LABEL org.opencontainers.image.version="$ERRAND_VERSION" \
      org.opencontainers.image.revision="$ERRAND_REVISION" \
      org.opencontainers.image.source="$ERRAND_SOURCE" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.vendor="errand"

# ---- server: the errand API server ----------------------------------------------------------
FROM runtime AS server
LABEL org.opencontainers.image.description="errand server: the HTTP API, the store and the dashboard (port 4200)"
# Listen on every interface of the container, so the other services (and `ports:`) reach it.
ENV ERRAND_SERVER_API_HOST=0.0.0.0
EXPOSE 4200
# Ready once the store takes writes (GET /api/health/ready, no API key needed). The check's
# own --timeout-seconds is under HEALTHCHECK's, so a hung server is reported by errand, with
# the URL, rather than killed silently.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD errand health --timeout-seconds 4 --api-url "http://127.0.0.1:${ERRAND_SERVER_API_PORT:-4200}/api"
CMD ["errand", "server", "start"]

# ---- task: the example's task worker (scale it with more replicas) --------------------------
FROM runtime AS task
LABEL org.opencontainers.image.description="errand example task worker: serves create_structured_output"
ENV ERRAND_LOCAL_STORAGE_PATH=/task-storage \
    ERRAND_RESULTS_PERSIST_BY_DEFAULT=true \
    ERRAND_LOGGING_LOG_PRINTS=true
# Healthy while its server (ERRAND_API_URL, a list as the worker uses it) is ready: a worker
# that cannot reach one claims nothing.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD errand health --timeout-seconds 4
CMD ["structured-output-task"]

# ---- api: the example's web API and page ----------------------------------------------------
FROM runtime AS api
LABEL org.opencontainers.image.description="errand example web API and page (port 8000)"
ENV ERRAND_LOCAL_STORAGE_PATH=/task-storage
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD errand health --timeout-seconds 4 --url http://127.0.0.1:8000/health
CMD ["structured-output-api", "--host", "0.0.0.0", "--port", "8000"]
