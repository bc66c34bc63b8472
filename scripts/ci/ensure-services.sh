#!/usr/bin/env bash
# Makes sure the local PostgreSQL and MariaDB servers the integration tests use are up.
#
#   - PostgreSQL: cluster <version>/main on 127.0.0.1:5432, reachable as user postgres without a
#     password. If no cluster exists, apt-get installs postgresql-15 (which creates 15/main).
#     If it is down: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start
#     If a password-less TCP login as postgres is refused, a single line
#       host all all 127.0.0.1/32 trust
#     is put in front of the other pg_hba.conf rules (backup kept next to it) and the cluster
#     reloaded; a pg_hba.conf that already allows it is never touched.
#   - MariaDB: 127.0.0.1:3306. If mariadbd is missing, apt-get installs mariadb-server.
#     If it is down: start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
#   - then waits (ENSURE_SERVICES_TIMEOUT seconds, default 60) until both
#       pg_isready -h 127.0.0.1 -p 5432     and     mariadb-admin -h 127.0.0.1 -uroot ping
#     succeed, and fails with the reason (and the server log's tail) otherwise.
# Idempotent: when both servers answer it changes nothing. Run as root (needed only to install
# or start something).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

TIMEOUT="${ENSURE_SERVICES_TIMEOUT:-60}"
PG_INSTALL_MAJOR=15            # installed only when no PostgreSQL cluster exists at all
PG_HOST=127.0.0.1
PG_PORT=5432
MARIADBD=/usr/sbin/mariadbd

log() { printf '[ensure-services] %s\n' "$*"; }
die() { printf '[ensure-services] ERROR: %s\n' "$*" >&2; exit 1; }
need_root() { [ "$(id -u)" -eq 0 ] || die "must run as root to $1"; }

started_at=$(date +%s)
deadline=$((started_at + TIMEOUT))

apt_install() {
  need_root "apt-get install $*"
  log "apt-get install $*"
  if ! apt-get install -y -q "$@"; then
    log "install failed; running apt-get update and retrying"
    apt-get update -q
    apt-get install -y -q "$@"
  fi
}

pg_ready() { command -v pg_isready >/dev/null && pg_isready -h "$PG_HOST" -p "$PG_PORT" -t 2 -q; }
maria_ping() { command -v mariadb-admin >/dev/null && mariadb-admin -h 127.0.0.1 -uroot --connect-timeout=2 ping >/dev/null 2>&1; }

# Single PostgreSQL version configured under /etc/postgresql (the start command relies on it).
pg_version() {
  local versions
  versions="$(ls /etc/postgresql 2>/dev/null || true)"
  [ -n "$versions" ] || return 1
  [ "$(printf '%s\n' "$versions" | wc -l)" -eq 1 ] ||
    die "several PostgreSQL versions under /etc/postgresql ($(echo $versions)); this script expects exactly one"
  printf '%s\n' "$versions"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL: install if absent, start if down
# ---------------------------------------------------------------------------------------------
pg_fresh_install=0
if pg_ready; then
  log "PostgreSQL is already accepting connections on ${PG_HOST}:${PG_PORT}"
else
  if ! pg_version >/dev/null || [ ! -x "/usr/lib/postgresql/$(pg_version)/bin/postgres" ]; then
    log "PostgreSQL is not installed"
    apt_install "postgresql-${PG_INSTALL_MAJOR}"
    pg_fresh_install=1
    if [ ! -d "/etc/postgresql/${PG_INSTALL_MAJOR}/main" ]; then
      log "pg_createcluster ${PG_INSTALL_MAJOR} main"
      pg_createcluster "${PG_INSTALL_MAJOR}" main
    fi
  fi
  PG_VER="$(pg_version)"
  [ -d "/etc/postgresql/${PG_VER}/main" ] || die "no cluster ${PG_VER}/main under /etc/postgresql/${PG_VER} (cluster name must be 'main')"
  if pg_ready; then
    log "PostgreSQL ${PG_VER}/main is accepting connections"
  elif pg_ctlcluster "$PG_VER" main status >/dev/null 2>&1; then
    log "PostgreSQL ${PG_VER}/main is running but not ready yet; waiting"
  else
    need_root "start PostgreSQL"
    log "starting PostgreSQL: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start ||
      die "pg_ctlcluster failed to start PostgreSQL ${PG_VER}/main; log: /var/log/postgresql/postgresql-${PG_VER}-main.log
$(tail -n 20 "/var/log/postgresql/postgresql-${PG_VER}-main.log" 2>/dev/null || true)"
  fi
fi

# ---------------------------------------------------------------------------------------------
# MariaDB: install if absent, start if down
# ---------------------------------------------------------------------------------------------
if maria_ping; then
  log "MariaDB is already answering on 127.0.0.1"
else
  if [ ! -x "$MARIADBD" ]; then
    log "MariaDB is not installed"
    apt_install mariadb-server
  fi
  # The package's postinst may have started it already (sysvinit machines).
  if maria_ping; then
    log "MariaDB is answering on 127.0.0.1"
  else
    need_root "start MariaDB"
    # mariadbd itself does not create its runtime dir (mysqld_safe/systemd normally do); it holds
    # the pid file and the socket. /run is a tmpfs on many machines, so it may be gone after boot.
    if id mysql >/dev/null 2>&1 && [ ! -d /run/mysqld ]; then
      log "creating /run/mysqld"
      install -d -o mysql -g mysql -m 0755 /run/mysqld
    fi
    datadir="$(my_print_defaults mysqld mariadb 2>/dev/null | sed -n 's/^--datadir=//p' | tail -n 1)"
    datadir="${datadir:-/var/lib/mysql}"
    if [ ! -d "$datadir/mysql" ]; then
      log "MariaDB data directory $datadir is not initialised; running mariadb-install-db"
      mariadb-install-db --user=mysql --datadir="$datadir" >/dev/null
    fi
    log "starting MariaDB: start-stop-daemon --start --oknodo --background --exec $MARIADBD"
    start-stop-daemon --start --oknodo --background --exec "$MARIADBD" ||
      die "start-stop-daemon failed to start $MARIADBD"
  fi
fi

# ---------------------------------------------------------------------------------------------
# Wait for both (bounded)
# ---------------------------------------------------------------------------------------------
pg_ok=0; maria_ok=0
while :; do
  [ $pg_ok = 1 ] || { pg_ready && pg_ok=1 && log "PostgreSQL ready: $(pg_isready -h "$PG_HOST" -p "$PG_PORT")"; } || true
  [ $maria_ok = 1 ] || { maria_ping && maria_ok=1 && log "MariaDB ready: $(mariadb-admin -h 127.0.0.1 -uroot ping 2>&1)"; } || true
  [ $pg_ok = 1 ] && [ $maria_ok = 1 ] && break
  if [ "$(date +%s)" -ge "$deadline" ]; then
    msg="gave up after ${TIMEOUT}s (ENSURE_SERVICES_TIMEOUT):"
    if [ $pg_ok = 0 ]; then
      ver="$(ls /etc/postgresql 2>/dev/null | head -n 1 || true)"
      msg+="
  PostgreSQL not ready: $(pg_isready -h "$PG_HOST" -p "$PG_PORT" 2>&1 || true)
  --- tail of /var/log/postgresql/postgresql-${ver}-main.log ---
$(tail -n 20 "/var/log/postgresql/postgresql-${ver}-main.log" 2>/dev/null || true)"
    fi
    if [ $maria_ok = 0 ]; then
      errlog="$(my_print_defaults mysqld mariadb 2>/dev/null | sed -n 's/^--log[-_]error=//p' | tail -n 1)"
      msg+="
  MariaDB not answering: $(mariadb-admin -h 127.0.0.1 -uroot --connect-timeout=2 ping 2>&1 || true)
  --- tail of ${errlog:-/var/log/mysql/error.log} ---
$(tail -n 20 "${errlog:-/var/log/mysql/error.log}" 2>/dev/null || true)"
    fi
    die "$msg"
  fi
  sleep 1
done

# ---------------------------------------------------------------------------------------------
# PostgreSQL: password-less TCP login as postgres from 127.0.0.1 (trust), only if needed
# ---------------------------------------------------------------------------------------------
pg_login() { PGCONNECT_TIMEOUT=5 psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -w -X -At -d postgres -c 'SELECT 1' 2>&1; }
if login_err="$(pg_login)"; then
  log "PostgreSQL login as postgres from ${PG_HOST} without password works"
else
  PG_VER="$(pg_version)"
  case "$login_err" in
    *"password authentication failed"* | *"no password supplied"* | *"no pg_hba.conf entry"* | *"authentication failed"*) ;;
    *) die "cannot log in to PostgreSQL at ${PG_HOST}:${PG_PORT} as postgres: $login_err" ;;
  esac
  need_root "allow trust logins from 127.0.0.1 in pg_hba.conf"
  hba="$(runuser -u postgres -- psql -X -At -d postgres -c 'SHOW hba_file' 2>/dev/null || true)"
  hba="${hba:-/etc/postgresql/${PG_VER}/main/pg_hba.conf}"
  [ -f "$hba" ] || die "pg_hba.conf not found at $hba"
  if grep -Eq '^[[:space:]]*host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust([[:space:]]|$)' "$hba" &&
     [ "$(grep -Ev '^[[:space:]]*(#|$)' "$hba" | head -n 1 | awk '{print $1,$2,$3,$4,$5}')" = "host all all 127.0.0.1/32 trust" ]; then
    die "pg_hba.conf ($hba) already starts with a trust rule for 127.0.0.1 but login still fails: $login_err"
  fi
  backup="${hba}.bak.$(date +%Y%m%d%H%M%S)"
  log "password-less login refused ($(printf '%s' "$login_err" | head -n 1))"
  log "adding 'host all all 127.0.0.1/32 trust' before the other rules of $hba (backup: $backup)"
  cp -p "$hba" "$backup"
  awk '
    !done && $0 !~ /^[ \t]*(#|$)/ {
      print "# added by kbsync scripts/ci/ensure-services.sh: password-less local TCP logins for tests"
      print "host    all             all             127.0.0.1/32            trust"
      done = 1
    }
    { print }
    END {
      if (!done) {
        print "# added by kbsync scripts/ci/ensure-services.sh: password-less local TCP logins for tests"
        print "host    all             all             127.0.0.1/32            trust"
      }
    }' "$backup" >"$hba.tmp"
  cat "$hba.tmp" >"$hba" && rm -f "$hba.tmp"   # keep owner and mode of the original
  log "reloading PostgreSQL ${PG_VER}/main"
  pg_ctlcluster --skip-systemctl-redirect "$PG_VER" main reload
  sleep 1
  login_err="$(pg_login)" || die "still cannot log in to PostgreSQL as postgres after editing $hba: $login_err"
  log "PostgreSQL login as postgres from ${PG_HOST} without password works now"
fi
[ $pg_fresh_install = 0 ] || log "note: PostgreSQL was installed by this run"

log "all services up ($(($(date +%s) - started_at))s)"
