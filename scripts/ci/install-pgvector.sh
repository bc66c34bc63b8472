#!/usr/bin/env bash
# Installs the pgvector extension ("vector") into the local PostgreSQL (default major 15).
#
# Debian 12 (bookworm) does not package pgvector, so this builds Debian's own source package
# from Debian 13 (trixie) against postgresql-server-dev-$PG_MAJOR:
#   1. no-op if the extension is already installed (control file + shared library present,
#      or the running server already lists it in pg_available_extensions);
#   2. apt-get installs the build dependencies (build-essential, dpkg-dev, postgresql-server-dev-N);
#   3. fetches the trixie source with `apt-get source pgvector`, using a deb-src entry for
#      trixie on the same mirror as this machine's bookworm entry. That entry lives in a
#      private, throwaway apt configuration under the temp build dir (own sources dir, own
#      lists dir, own cache): there is never a trixie `deb` line, and the system's apt
#      sources and package lists are not touched, so nothing can upgrade to or install
#      binary packages from trixie;
#   4. make && make install with the PGXS of /usr/lib/postgresql/N/bin/pg_config;
#   5. verifies in a scratch database: CREATE EXTENSION vector; SELECT '[1,2,3]'::vector.
#
# Usage (as root):  scripts/ci/install-pgvector.sh
# Environment:
#   PG_MAJOR=15                PostgreSQL major version to build for
#   PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres   server used for the check and verification
#   PGVECTOR_FORCE=1           rebuild and reinstall even if already installed
#   PGVECTOR_SUITE=trixie      Debian suite the source package comes from
#   PGVECTOR_MIRROR=URL        Debian mirror (default: the one this machine's apt sources use)
#   PGVECTOR_KEEP_BUILD=1      keep the temp build directory (for debugging)
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PG_MAJOR="${PG_MAJOR:-15}"
PGVECTOR_SUITE="${PGVECTOR_SUITE:-trixie}"
export PGHOST="${PGHOST:-127.0.0.1}"
export PGPORT="${PGPORT:-5432}"
export PGUSER="${PGUSER:-postgres}"
export PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-5}"

PG_BINDIR="/usr/lib/postgresql/${PG_MAJOR}/bin"
PG_CONFIG="${PG_BINDIR}/pg_config"

log() { printf '[install-pgvector] %s\n' "$*"; }
die() { printf '[install-pgvector] ERROR: %s\n' "$*" >&2; exit 1; }

started_at=$(date +%s)

# psql from the PG_MAJOR client if present (same result, avoids the pg_wrapper guessing).
PSQL="${PG_BINDIR}/psql"
[ -x "$PSQL" ] || PSQL="$(command -v psql || true)"

# Extension directories of PG_MAJOR. pg_config of PG_MAJOR ships in postgresql-client-N; fall
# back to Debian's fixed layout when it is not there yet.
pg_dirs() {
  if [ -x "$PG_CONFIG" ]; then
    PG_SHAREDIR="$("$PG_CONFIG" --sharedir)"
    PG_PKGLIBDIR="$("$PG_CONFIG" --pkglibdir)"
  else
    PG_SHAREDIR="/usr/share/postgresql/${PG_MAJOR}"
    PG_PKGLIBDIR="/usr/lib/postgresql/${PG_MAJOR}/lib"
  fi
  CONTROL_FILE="${PG_SHAREDIR}/extension/vector.control"
  SHLIB="${PG_PKGLIBDIR}/vector.so"
}

# Prints "<server major> <vector default_version or empty>" for the running server; fails if
# the server cannot be reached.
server_vector_info() {
  [ -n "$PSQL" ] || return 1
  "$PSQL" -w -X -At -F ' ' -d postgres -c \
    "SELECT current_setting('server_version_num')::int / 10000,
            coalesce((SELECT default_version FROM pg_available_extensions WHERE name = 'vector'), '')" \
    2>/dev/null
}

# ---------------------------------------------------------------------------------------------
# 1. Already installed?
# ---------------------------------------------------------------------------------------------
pg_dirs
if [ "${PGVECTOR_FORCE:-0}" != 1 ]; then
  if [ -f "$CONTROL_FILE" ] && [ -f "$SHLIB" ]; then
    ver="$(sed -n "s/^default_version *= *'\(.*\)'.*/\1/p" "$CONTROL_FILE")"
    log "pgvector ${ver:-?} already installed for PostgreSQL ${PG_MAJOR} ($CONTROL_FILE, $SHLIB); nothing to do"
    exit 0
  fi
  if info="$(server_vector_info)"; then
    read -r srv_major srv_vector <<<"$info" || true
    if [ "$srv_major" = "$PG_MAJOR" ] && [ -n "${srv_vector:-}" ]; then
      log "pgvector ${srv_vector} already available in the running PostgreSQL ${srv_major} server (pg_available_extensions); nothing to do"
      exit 0
    fi
  fi
  if [ -f "$CONTROL_FILE" ]; then
    log "found $CONTROL_FILE but not $SHLIB: installation is incomplete, rebuilding"
  fi
else
  log "PGVECTOR_FORCE=1: rebuilding even if installed"
fi

[ "$(id -u)" -eq 0 ] || die "must run as root (installs packages and writes into the PostgreSQL directories)"
command -v apt-get >/dev/null || die "apt-get not found: this script supports Debian only"

log "pgvector is not installed for PostgreSQL ${PG_MAJOR}; building it from Debian ${PGVECTOR_SUITE}'s source package"

# ---------------------------------------------------------------------------------------------
# 2. Build dependencies (from this machine's own, unchanged apt sources)
# ---------------------------------------------------------------------------------------------
is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for pkg in build-essential dpkg-dev "postgresql-server-dev-${PG_MAJOR}"; do
  is_installed "$pkg" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    log "install failed; running apt-get update and retrying"
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
else
  log "build dependencies already installed (build-essential, dpkg-dev, postgresql-server-dev-${PG_MAJOR})"
fi
[ -x "$PG_CONFIG" ] || die "$PG_CONFIG missing even after installing postgresql-server-dev-${PG_MAJOR}"
[ -f "$("$PG_CONFIG" --pgxs)" ] || die "PGXS makefile $("$PG_CONFIG" --pgxs) missing (postgresql-server-dev-${PG_MAJOR} not installed?)"
pg_dirs

# ---------------------------------------------------------------------------------------------
# 3. Fetch the source through a private apt configuration with only a trixie deb-src entry
# ---------------------------------------------------------------------------------------------
# Mirror and keyring: reuse the entry this machine uses for its own release (deb822 .sources
# files or one-line sources.list); fall back to deb.debian.org and the Debian archive keyring.
codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
mirror="${PGVECTOR_MIRROR:-}"
keyring=""
if [ -z "$mirror" ] && [ -n "$codename" ]; then
  shopt -s nullglob
  for f in /etc/apt/sources.list.d/*.sources; do
    # Paragraph-wise deb822 parse: first enabled "deb" stanza whose Suites has exactly $codename.
    line="$(awk -v want="$codename" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && enabled != "no" && (" " suites " ") ~ (" " want " ") && uris != "") {
          split(uris, u, " "); print u[1] "\t" signed; found = 1; exit
        }
        types = ""; suites = ""; uris = ""; signed = ""; enabled = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      /^[A-Za-z-]+:/ {
        key = tolower($0); sub(/:.*/, "", key); val = $0; sub(/^[^:]*:[ \t]*/, "", val)
        if (key == "types") types = val; else if (key == "suites") suites = val
        else if (key == "uris") uris = val; else if (key == "signed-by") signed = val
        else if (key == "enabled") enabled = tolower(val)
      }
      END { if (!found) flush() }' "$f")"
    if [ -n "$line" ]; then
      mirror="${line%%$'\t'*}"; keyring="${line#*$'\t'}"
      log "using mirror $mirror (from $f)"
      break
    fi
  done
  if [ -z "$mirror" ]; then
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] || continue
      # deb [options] URI suite components...
      line="$(awk -v want="$codename" '
        $1 == "deb" {
          opts = ""; i = 2
          if ($2 ~ /^\[/) { while (i <= NF) { opts = opts " " $i; if ($i ~ /\]$/) { i++; break } i++ } }
          if ($(i + 1) == want) {
            kr = ""; if (match(opts, /signed-by=[^] ]+/)) kr = substr(opts, RSTART + 10, RLENGTH - 10)
            print $i "\t" kr; exit
          }
        }' "$f")"
      if [ -n "$line" ]; then
        mirror="${line%%$'\t'*}"; keyring="${line#*$'\t'}"
        log "using mirror $mirror (from $f)"
        break
      fi
    done
  fi
  shopt -u nullglob
fi
if [ -z "$mirror" ]; then
  mirror="http://deb.debian.org/debian"
  log "no Debian entry for '${codename:-?}' found in the apt sources; using $mirror"
fi
mirror="${mirror%/}"
# Signed-By may be inline key material (multi-line) instead of a path; only keep a real file.
case "$keyring" in /*) [ -f "$keyring" ] || keyring="" ;; *) keyring="" ;; esac
[ -n "$keyring" ] || keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || die "Debian archive keyring $keyring not found (apt-get install debian-archive-keyring)"

workdir="$(mktemp -d /tmp/pgvector-build.XXXXXX)"
cleanup() {
  if [ "${PGVECTOR_KEEP_BUILD:-0}" = 1 ]; then
    log "keeping build directory $workdir"
  else
    rm -rf "$workdir"
  fi
}
trap cleanup EXIT
chmod 0755 "$workdir"
log "build directory: $workdir"

aptdir="$workdir/apt"
mkdir -p "$aptdir/sources.list.d" "$aptdir/lists/partial" "$aptdir/cache/archives/partial" "$workdir/src"
cat >"$aptdir/sources.list.d/${PGVECTOR_SUITE}-src.sources" <<EOF
Types: deb-src
URIs: $mirror
Suites: $PGVECTOR_SUITE
Components: main
Signed-By: $keyring
EOF
log "private apt source (deb-src only, not added to /etc/apt):"
sed 's/^/    /' "$aptdir/sources.list.d/${PGVECTOR_SUITE}-src.sources"
# apt downloads as the unprivileged _apt user; let it write where it downloads.
if id _apt >/dev/null 2>&1; then
  chown _apt "$aptdir/lists/partial" "$aptdir/cache/archives/partial" "$workdir/src"
fi

apt_private=(
  -o "Dir::Etc::SourceList=/dev/null"
  -o "Dir::Etc::SourceParts=$aptdir/sources.list.d"
  -o "Dir::State::Lists=$aptdir/lists"
  -o "Dir::Cache=$aptdir/cache"
  -o "APT::Get::List-Cleanup=false"
)
log "apt-get update (private config: ${PGVECTOR_SUITE} Sources index only)"
apt-get "${apt_private[@]}" update -q
log "apt-get source pgvector"
(cd "$workdir/src" && apt-get "${apt_private[@]}" source -q --only-source pgvector)

srcdir="$(find "$workdir/src" -mindepth 1 -maxdepth 1 -type d -name 'pgvector-*' | head -n 1)"
[ -n "$srcdir" ] && [ -f "$srcdir/Makefile" ] || die "apt-get source did not produce a pgvector source tree in $workdir/src"
dsc_version="$(sed -n 's/^Version: //p' "$workdir"/src/pgvector_*.dsc | head -n 1)"
log "source: $(basename "$srcdir") (Debian package version ${dsc_version:-?})"

# ---------------------------------------------------------------------------------------------
# 4. Build and install
# ---------------------------------------------------------------------------------------------
# OPTFLAGS= : upstream defaults to -march=native, which would tie the binary to this CPU (a CI
# image built here could SIGILL elsewhere). Debian's package builds without it too.
make_args=(PG_CONFIG="$PG_CONFIG" OPTFLAGS=)
log "make (PostgreSQL $("$PG_CONFIG" --version | awk '{print $2}'), $(nproc) jobs)"
make -C "$srcdir" -s -j"$(nproc)" "${make_args[@]}"
log "make install"
make -C "$srcdir" -s "${make_args[@]}" install
[ -f "$CONTROL_FILE" ] && [ -f "$SHLIB" ] || die "make install finished but $CONTROL_FILE / $SHLIB are missing"
log "installed $CONTROL_FILE and $SHLIB"

# ---------------------------------------------------------------------------------------------
# 5. Verify against the running server in a scratch database
# ---------------------------------------------------------------------------------------------
info="$(server_vector_info)" || die "installed, but cannot connect to PostgreSQL at ${PGHOST}:${PGPORT} as ${PGUSER} to verify (run scripts/ci/ensure-services.sh first)"
read -r srv_major srv_vector <<<"$info" || true
[ "$srv_major" = "$PG_MAJOR" ] || die "server at ${PGHOST}:${PGPORT} is PostgreSQL ${srv_major}, but pgvector was built for ${PG_MAJOR}"

scratch_db="pgvector_check_$$_${RANDOM}"
drop_scratch() {
  "$PSQL" -w -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$scratch_db\"" >/dev/null 2>&1 || true
}
trap 'drop_scratch; cleanup' EXIT
log "verifying in scratch database $scratch_db"
"$PSQL" -w -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE \"$scratch_db\""
"$PSQL" -w -X -v ON_ERROR_STOP=1 -d "$scratch_db" \
  -c 'CREATE EXTENSION IF NOT EXISTS vector' \
  -c "SELECT extversion FROM pg_extension WHERE extname = 'vector'" \
  -c "SELECT '[1,2,3]'::vector AS v, '[1,2,3]'::vector <-> '[1,2,4]'::vector AS l2_distance"
"$PSQL" -w -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE \"$scratch_db\""
log "dropped scratch database $scratch_db"

log "done: pgvector ${srv_vector:-?} installed for PostgreSQL ${PG_MAJOR} in $(($(date +%s) - started_at))s"
