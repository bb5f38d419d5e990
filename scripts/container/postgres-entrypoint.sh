#!/bin/sh
# SPDX-License-Identifier: MIT
# postgres-entrypoint.sh — the entrypoint of the Dockerfile's `postgres` stage (PostgreSQL 15
# from Debian, for compose.postgres.yaml). Runs as the `postgres` user. At the first start,
# when $PGDATA (the data volume) holds no cluster yet, it creates one:
#   - initdb with the role POSTGRES_USER (default postgres) whose password is
#     POSTGRES_PASSWORD (required then), UTF-8, data checksums;
#   - connections over the network need that password (scram-sha-256); the Unix socket,
#     reachable only from inside this container, is trusted (pg_isready, `podman exec psql`);
#   - the database POSTGRES_DB (default: POSTGRES_USER), owned by that role.
# Later starts use the cluster as it is: changing POSTGRES_PASSWORD then changes nothing
# (use ALTER ROLE). Then it runs the server in the foreground, listening on every interface,
# with any arguments given added (`command: ["-c", "max_connections=200"]` in compose).
# The same variable names as the Docker Hub image, so either can replace the other.
set -eu

: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
export PGDATA

say() { echo "postgres-entrypoint: $*" >&2; }

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    say "no database in $PGDATA yet, and POSTGRES_PASSWORD is not set: set it to the password of the role '$POSTGRES_USER'"
    exit 1
  fi
  say "creating the cluster in $PGDATA (role $POSTGRES_USER, database $POSTGRES_DB)"
  pwfile=$(mktemp)
  trap 'rm -f "$pwfile"' EXIT
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \
    --encoding=UTF8 --locale=C.UTF-8 --data-checksums \
    --auth-local=trust --auth-host=scram-sha-256 >&2
  rm -f "$pwfile"
  # Every address: the other containers reach it over the compose network.
  printf '\n# added by postgres-entrypoint: any address, with the password\nhost all all all scram-sha-256\n' \
    >>"$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    # A server on the Unix socket only, so nobody connects before the database exists.
    pg_ctl --pgdata="$PGDATA" --silent --wait -o "-c listen_addresses=''" start >&2
    createdb --username="$POSTGRES_USER" --owner="$POSTGRES_USER" "$POSTGRES_DB"
    pg_ctl --pgdata="$PGDATA" --silent --wait --mode=fast stop >&2
  fi
  say "cluster created"
fi

exec postgres -c listen_addresses='*' "$@"
