# Sourced by scripts/run, test, bench and stop: brings up a throwaway local PostgreSQL (or reuses the
# running one) and exports DATABASE_URL (ensure_postgres NAME PORT [extra server options]), or
# stops one (stop_postgres NAME). Installs PostgreSQL with apt-get only when the server binaries
# are missing.

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

# PostgreSQL refuses to run as root: then the clusters belong to the `postgres` user.
as_cluster_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Where cluster NAME lives: .pgdata/NAME, or a folder in /tmp when the `postgres` user (as root)
# cannot reach the project folder.
cluster_dir() {
  if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$PROJECT_ROOT"; then
    echo "/tmp/gatehouse-pg-$(printf '%s' "$PROJECT_ROOT" | cksum | cut -d' ' -f1)/$1"
  else
    echo "$PROJECT_ROOT/.pgdata/$1"
  fi
}

# Stops cluster NAME if it runs; its data stays for the next start.
stop_postgres() {
  local name=$1 dir bindir
  dir=$(cluster_dir "$name")
  [ -f "$dir/data/PG_VERSION" ] || return 0
  bindir=$(postgres_bindir) || return 0
  if as_cluster_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    as_cluster_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    echo "gatehouse: stopped the $name cluster ($dir)"
  fi
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

  local dir
  dir=$(cluster_dir "$name")
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then chown postgres "$dir"; fi

  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_cluster_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; return 1; }
  fi

  if ! as_cluster_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    as_cluster_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300 $*" start >/dev/null \
      || { tail -n 20 "$dir/server.log" >&2; return 1; }
  fi
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  export GATEHOUSE_PG_DIR="$dir" GATEHOUSE_PG_BINDIR="$bindir"
}
