# SPDX-License-Identifier: MIT
# Dockerfile — builds errand and the structured-output example once, then makes one small
# runtime image per service of compose.yaml, as the seed's multi-stage Dockerfile does:
#   server  `errand server start`            (the errand API, port 4200)
#   task    `structured-output-task`         (a task worker serving create_structured_output)
#   api     `structured-output-api`          (the example web API, port 8000)
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
