#!/usr/bin/env bash
# Makes sure the services the integration tests talk to are installed and
# accepting connections on loopback:
#   PostgreSQL 15+ on 127.0.0.1:5432 (user postgres, trust auth on loopback)
#   Mosquitto 2.x  on 127.0.0.1:1883 (anonymous)
# plus their command-line clients (psql, pg_isready, mosquitto_pub/_sub).
#
# Idempotent. When both already run (the usual case) it only looks, and
# takes well under a second. It needs root only to install or start
# something, and apt (Debian/Ubuntu) to install. It never stops a service.
# Prints one line per service saying what it found or did.
set -euo pipefail

readonly PG_HOST=127.0.0.1 PG_PORT=5432 PG_MIN_MAJOR=15
readonly MQTT_HOST=127.0.0.1 MQTT_PORT=1883 MQTT_MAJOR=2
readonly WAIT_SECONDS=30
readonly FALLBACK_MQTT_CONF=/tmp/services-sh-mosquitto.conf

say() { printf 'services.sh: %s\n' "$*"; }
die() {
  printf 'services.sh: error: %s\n' "$*" >&2
  exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }
need_root() {
  [ "$(id -u)" -eq 0 ] || die "must run as root to $*"
}

# Whether something accepts TCP connections on HOST PORT (bash's /dev/tcp,
# bounded by timeout in case the listen queue is full).
accepts() {
  timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

pg_accepts() {
  if have pg_isready; then
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2
  else
    accepts "$PG_HOST" "$PG_PORT"
  fi
}

mqtt_accepts() { accepts "$MQTT_HOST" "$MQTT_PORT"; }

# Polls "$@" until it succeeds, for at most WAIT_SECONDS.
wait_until() {
  local deadline=$((SECONDS + WAIT_SECONDS))
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

# Highest installed PostgreSQL server major version, or nothing.
pg_server_major() {
  local dir major best=""
  for dir in /usr/lib/postgresql/*/bin/postgres; do
    [ -x "$dir" ] || continue
    major=${dir#/usr/lib/postgresql/}
    major=${major%%/*}
    if [[ $major =~ ^[0-9]+$ ]] && { [ -z "$best" ] || [ "$major" -gt "$best" ]; }; then
      best=$major
    fi
  done
  printf '%s' "$best"
}

# Highest cluster version under /etc/postgresql, or nothing.
pg_cluster_major() {
  local dir major best=""
  for dir in /etc/postgresql/*/main; do
    [ -d "$dir" ] || continue
    major=${dir#/etc/postgresql/}
    major=${major%%/*}
    if [[ $major =~ ^[0-9]+$ ]] && { [ -z "$best" ] || [ "$major" -gt "$best" ]; }; then
      best=$major
    fi
  done
  printf '%s' "$best"
}

mosquitto_bin() {
  if have mosquitto; then
    command -v mosquitto
  elif [ -x /usr/sbin/mosquitto ]; then
    printf '%s' /usr/sbin/mosquitto
  fi
}

# "2.0.11" from `mosquitto -h` (which exits non-zero by design).
mosquitto_version() {
  local line
  line=$("$1" -h 2>&1 | head -n 1 || true)
  [[ $line =~ version\ ([0-9]+(\.[0-9]+)*) ]] && printf '%s' "${BASH_REMATCH[1]}"
}

# --- install what is missing -------------------------------------------------

missing=()
have psql && have pg_isready || missing+=(postgresql-client)
[ -n "$(pg_server_major)" ] || missing+=(postgresql)
[ -n "$(mosquitto_bin)" ] || missing+=(mosquitto)
have mosquitto_pub && have mosquitto_sub || missing+=(mosquitto-clients)

# Set when this run installed PostgreSQL or created its cluster: a cluster
# nobody else has configured yet.
pg_fresh=false
if [ "${#missing[@]}" -gt 0 ]; then
  need_root "install ${missing[*]}"
  have apt-get || die "apt-get not found; install ${missing[*]} by hand"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
  for package in "${missing[@]}"; do
    if [ "$package" = postgresql ]; then pg_fresh=true; fi
  done
fi

# --- PostgreSQL ----------------------------------------------------------------

pg_major=$(pg_server_major)
[ -n "$pg_major" ] || die "no PostgreSQL server under /usr/lib/postgresql after installing"
[ "$pg_major" -ge "$PG_MIN_MAJOR" ] ||
  die "PostgreSQL $pg_major is installed; the tests need $PG_MIN_MAJOR or later"

cluster=$(pg_cluster_major)
if [ -z "$cluster" ]; then
  need_root "create a PostgreSQL cluster"
  say "postgresql: no cluster under /etc/postgresql; creating $pg_major/main"
  pg_createcluster "$pg_major" main >/dev/null
  cluster=$pg_major
  pg_fresh=true
fi

if $pg_fresh; then
  # A fresh cluster asks for passwords on TCP; the tests connect as
  # postgres without one. Trust loopback only, and only in a cluster this
  # run installed or created, never in one someone else configured.
  hba=/etc/postgresql/$cluster/main/pg_hba.conf
  if ! grep -Eq '^host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
    {
      printf '# Added by scripts/services.sh for local testing: trust loopback.\n'
      printf 'host all all 127.0.0.1/32 trust\n'
      printf 'host all all ::1/128 trust\n'
      cat "$hba"
    } >"$hba.new"
    chown --reference="$hba" "$hba.new"
    chmod --reference="$hba" "$hba.new"
    mv "$hba.new" "$hba"
  fi
  say "postgresql: fresh cluster; made 127.0.0.1 and ::1 trust-authenticated in $hba (local testing only)"
  if pg_accepts; then
    pg_ctlcluster --skip-systemctl-redirect "$cluster" main reload
  fi
fi

if pg_accepts; then
  pg_did="already accepting on $PG_HOST:$PG_PORT"
else
  need_root "start PostgreSQL"
  if ! out=$(pg_ctlcluster --skip-systemctl-redirect "$cluster" main start 2>&1); then
    say "postgresql: pg_ctlcluster start said: $out"
  fi
  wait_until pg_accepts ||
    die "PostgreSQL $cluster/main not accepting on $PG_HOST:$PG_PORT after ${WAIT_SECONDS}s; see /var/log/postgresql/postgresql-$cluster-main.log"
  pg_did="started cluster $cluster/main; accepting on $PG_HOST:$PG_PORT"
fi
say "postgresql $pg_major: $pg_did"

# --- Mosquitto -----------------------------------------------------------------

mosquitto=$(mosquitto_bin)
[ -n "$mosquitto" ] || die "no mosquitto binary after installing"
mqtt_version=$(mosquitto_version "$mosquitto") || true
[ "${mqtt_version%%.*}" = "$MQTT_MAJOR" ] ||
  die "$mosquitto is version '${mqtt_version:-unknown}'; the tests need Mosquitto $MQTT_MAJOR.x"

# Whether a mosquitto config listens on MQTT_PORT: an explicit listener (or
# the old `port`), in the file or its include_dir, or no listener at all,
# which Mosquitto 2 takes as "1883 on loopback only".
conf_listens() {
  local conf=$1 files=("$1") dir
  [ -f "$conf" ] || return 1
  dir=$(sed -nE 's/^[[:space:]]*include_dir[[:space:]]+//p' "$conf" | head -n 1)
  if [ -n "$dir" ] && [ -d "$dir" ]; then
    shopt -s nullglob
    files+=("$dir"/*.conf)
    shopt -u nullglob
  fi
  if grep -Eqs "^[[:space:]]*(listener|port)[[:space:]]+$MQTT_PORT([[:space:]]|\$)" "${files[@]}"; then
    return 0
  fi
  ! grep -Eqs '^[[:space:]]*(listener|port)[[:space:]]' "${files[@]}"
}

if mqtt_accepts; then
  mqtt_did="already accepting on $MQTT_HOST:$MQTT_PORT"
else
  conf=/etc/mosquitto/mosquitto.conf
  if ! conf_listens "$conf"; then
    conf=$FALLBACK_MQTT_CONF
    {
      printf '# Written by scripts/services.sh: %s missing or not on port %s.\n' \
        /etc/mosquitto/mosquitto.conf "$MQTT_PORT"
      printf 'listener %s %s\n' "$MQTT_PORT" "$MQTT_HOST"
      printf 'allow_anonymous true\n'
      # As root, mosquitto switches to the user `mosquitto`; keep root where
      # that user does not exist, rather than fail to start.
      if [ "$(id -u)" -eq 0 ] && ! id mosquitto >/dev/null 2>&1; then
        printf 'user root\n'
      fi
    } >"$conf"
  fi
  # Debian's config writes its pid and log where the init script would have
  # prepared; prepare them the same way (owned by the broker's user).
  for dir in /run/mosquitto /var/log/mosquitto; do
    if [ "$(id -u)" -eq 0 ] && id mosquitto >/dev/null 2>&1 && grep -qs "$dir" "$conf"; then
      install -d -o mosquitto -g mosquitto "$dir"
    fi
  done
  if ! out=$("$mosquitto" -d -c "$conf" 2>&1); then
    die "mosquitto -d -c $conf failed: $out"
  fi
  wait_until mqtt_accepts ||
    die "Mosquitto not accepting on $MQTT_HOST:$MQTT_PORT after ${WAIT_SECONDS}s (config $conf; see its log_dest)"
  mqtt_did="started with $conf; accepting on $MQTT_HOST:$MQTT_PORT"
fi
say "mosquitto $mqtt_version: $mqtt_did"
