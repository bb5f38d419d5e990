# SPDX-License-Identifier: MIT
# Dockerfile — builds errand and the structured-output example once, then makes one small
# runtime image per service of compose.yaml, as the seed's multi-stage Dockerfile does:
#   server  `errand server start`            (the errand API, port 4200)
#   task    `structured-output-task`         (a task worker serving create_structured_output)
#   api     `structured-output-api`          (the example web API, port 8000)
# and, for compose.postgres.yaml (two servers on PostgreSQL, results in S3), two more:
#   postgres  PostgreSQL 15 from Debian       (port 5432, data in a volume)
#   s3        s3rver from npm, an S3 stand-in (port 4568, objects in a volume)
# compose.yaml picks one per service with `build.target`; by hand:
#   docker build --target server -t errand-server .
#   podman build --network host --target server -t errand-server .
# The compilers and -dev packages stay in the `build` stage; the runtime stages get only the
# shared libraries the binaries link, and run as an unprivileged user.

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
      libmicrohttpd12 libcurl4 libjansson4 libsqlite3-0 libssl3 libpq5 ca-certificates \
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
USER s3rver
WORKDIR /data
EXPOSE 4568
# Path-style requests only: with vhost buckets on, s3rver would take the host name the
# others use (http://s3:4568) for a bucket name.
ENTRYPOINT ["tini", "--", "s3rver", "--directory", "/data", "--address", "0.0.0.0", "--port", "4568", "--no-vhost-buckets"]
CMD ["--configure-bucket", "errand-results"]

# ---- server: the errand API server ----------------------------------------------------------
FROM base AS server
# Listen on every interface of the container, so the other services (and `ports:`) reach it.
ENV ERRAND_SERVER_API_HOST=0.0.0.0
EXPOSE 4200
CMD ["errand", "server", "start"]

# ---- task: the example's task worker (scale it with more replicas) --------------------------
FROM base AS task
ENV ERRAND_LOCAL_STORAGE_PATH=/task-storage \
    ERRAND_RESULTS_PERSIST_BY_DEFAULT=true \
    ERRAND_LOGGING_LOG_PRINTS=true
CMD ["structured-output-task"]

# ---- api: the example's web API and page ----------------------------------------------------
FROM base AS api
ENV ERRAND_LOCAL_STORAGE_PATH=/task-storage
EXPOSE 8000
CMD ["structured-output-api", "--host", "0.0.0.0", "--port", "8000"]
