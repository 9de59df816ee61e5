# Sourced by scripts/run and scripts/test: brings up a throwaway local PostgreSQL (or reuses the
# running one) and exports DATABASE_URL. Usage: ensure_postgres NAME PORT [extra server options]
# Installs PostgreSQL with apt-get only when the server binaries are missing.

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

postgres_bindir() {
  local dir
  for dir in /usr/lib/postgresql/*/bin /usr/local/pgsql/bin; do
    if [ -x "$dir/initdb" ]; then echo "$dir"; return 0; fi
  done
  if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir; return 0
  fi
  return 1
}

ensure_postgres() {
  local name=$1 port=$2; shift 2
  local bindir
  if ! bindir=$(postgres_bindir); then
    echo "gatehouse: installing PostgreSQL (server binaries not found)" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
    bindir=$(postgres_bindir)
  fi

  # PostgreSQL refuses to run as root: then the cluster belongs to the `postgres` user, in a
  # folder that user can reach (the project folder when its parents are traversable).
  local run=() dir="$PROJECT_ROOT/.pgdata/$name"
  if [ "$(id -u)" -eq 0 ]; then
    run=(runuser -u postgres --)
    if ! runuser -u postgres -- test -x "$PROJECT_ROOT"; then
      dir="/tmp/gatehouse-pg-$(printf '%s' "$PROJECT_ROOT" | cksum | cut -d' ' -f1)/$name"
    fi
    mkdir -p "$dir"
    chown postgres "$dir"
  else
    mkdir -p "$dir"
  fi

  if [ ! -f "$dir/data/PG_VERSION" ]; then
    "${run[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; return 1; }
  fi

  if ! "${run[@]}" "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    "${run[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300 $*" start >/dev/null \
      || { tail -n 20 "$dir/server.log" >&2; return 1; }
  fi
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  export GATEHOUSE_PG_DIR="$dir" GATEHOUSE_PG_BINDIR="$bindir"
}
