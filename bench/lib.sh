# shellcheck shell=bash
# Helpers for bench/run: free ports, the private broker, the runner, fresh
# databases, and CPU/RSS sampling from /proc. Sourced, not run.
#
# Every wait here is bounded (a count of tries times a delay), and every
# process started here is stopped by the PID this file recorded, never by
# name.

CLK_TCK=$(getconf CLK_TCK)

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "bench: $*"; exit 1; }

# wait_until TRIES DELAY CMD...: runs CMD until it succeeds, at most TRIES
# times, sleeping DELAY seconds between tries.
wait_until() {
  local tries=$1 delay=$2 i
  shift 2
  for ((i = 0; i < tries; i++)); do
    "$@" && return 0
    sleep "$delay"
  done
  return 1
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port: a loopback port nobody listens on a moment ago.
free_port() {
  local i port
  for ((i = 0; i < 100; i++)); do
    port=$((20000 + RANDOM % 40000))
    if ! port_in_use "$port"; then
      echo "$port"
      return 0
    fi
  done
  die "no free loopback port found"
}

pid_alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

# stop_pid PID WHAT: SIGTERM, wait up to 40 s, then SIGKILL; reaps it.
stop_pid() {
  local pid=$1 what=$2
  [[ -n $pid ]] || return 0
  if ! pid_alive "$pid"; then
    wait "$pid" 2>/dev/null || true
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_until 400 0.1 bash -c "! kill -0 $pid 2>/dev/null"; then
    log "$what (pid $pid) still running 40 s after SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# --- the private broker ------------------------------------------------------

# broker_start NAME: a fresh mosquitto on a free port, config and log in
# $OUT/NAME.broker/; sets BROKER_PID and BROKER_URL.
broker_start() {
  local dir="$OUT/$1.broker" port user_line="" attempt
  mkdir -p "$dir"
  # As root mosquitto would switch to the `mosquitto` user, who cannot write
  # in our directory.
  [[ $(id -u) == 0 ]] && user_line="user root"
  for ((attempt = 0; attempt < 5; attempt++)); do
    port=$(free_port)
    sed -e "s|@USER_LINE@|$user_line|" -e "s|@PORT@|$port|" -e "s|@DIR@|$dir|" \
      "$BENCH_DIR/mosquitto.conf" >"$dir/mosquitto.conf"
    : >"$dir/mosquitto.log"
    "$MOSQUITTO" -c "$dir/mosquitto.conf" >"$dir/mosquitto.out" 2>&1 &
    BROKER_PID=$!
    if wait_until 100 0.05 broker_ready "$dir" "$port"; then
      BROKER_URL="mqtt://127.0.0.1:$port"
      return 0
    fi
    stop_pid "$BROKER_PID" mosquitto
  done
  die "mosquitto did not start; see $dir/mosquitto.log"
}

broker_ready() {
  pid_alive "$BROKER_PID" && grep -q ' running' "$1/mosquitto.log" && port_in_use "$2"
}

broker_stop() {
  stop_pid "${BROKER_PID:-}" mosquitto
  BROKER_PID=""
}

# --- databases ---------------------------------------------------------------

psql_admin() { PGOPTIONS='-c client_min_messages=warning' psql "$PG_BASE/postgres" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql_db() { PGOPTIONS='-c client_min_messages=warning' psql "$PG_BASE/$DB" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

# db_fresh NAME: drops and creates bench_NAME_<pid>; sets DB.
db_fresh() {
  DB="bench_${1}_$$"
  psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
  CREATED_DBS+=("$DB")
}

# db_migrate: applies migrations/*.sql with psql, as the runner would.
db_migrate() {
  local file
  for file in "$REPO"/migrations/*.sql; do
    psql_db -f "$file" >/dev/null 2>"$OUT/$DB.migrate.log" ||
      die "migration $file failed: $(cat "$OUT/$DB.migrate.log")"
  done
}

db_drop_all() {
  local db
  for db in "${CREATED_DBS[@]}"; do
    psql_admin -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 ||
      log "could not drop database $db"
  done
  CREATED_DBS=()
}

# --- the runner --------------------------------------------------------------

# runner_start NAME: the runner against $BROKER_URL and $DB (which it
# migrates), metrics on a free port; waits for /readyz. Sets RUNNER_PID and
# METRICS_URL. INGEST_* and DB_POOL_MAX pass through from the environment.
# The port was free a moment before the runner binds it; if something else
# took it meanwhile (other tests run beside the smoke run), it tries another,
# as broker_start does.
runner_start() {
  local port attempt log="$OUT/$1.runner.log"
  for ((attempt = 0; attempt < 5; attempt++)); do
    port=$(free_port)
    MQTT_URL="$BROKER_URL" DATABASE_URL="$PG_BASE/$DB" \
      MQTT_CLIENT_ID="bench-$1-$$" METRICS_PORT="$port" RUST_LOG="${RUST_LOG:-info}" \
      "$RUNNER" "$REPO/pipelines/traksense.yaml" >"$log" 2>&1 &
    RUNNER_PID=$!
    # shellcheck disable=SC2034 # used by bench/run
    METRICS_URL="http://127.0.0.1:$port/metrics"
    wait_until 300 0.1 runner_ready_or_gone "$port" ||
      die "runner not ready in 30 s; see $log"
    pid_alive "$RUNNER_PID" && return 0
    grep -q 'cannot listen for /metrics' "$log" || die "runner exited; see $log"
    log "metrics port $port was taken before the runner bound it; trying another"
  done
  die "runner found no free metrics port in 5 tries; see $log"
}

# runner_ready_or_gone PORT: /readyz answers, or the runner has exited.
runner_ready_or_gone() {
  ! pid_alive "$RUNNER_PID" || curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$1/readyz"
}

# runner_memory KV_FILE: appends VmHWM and VmRSS (kB) of the runner.
runner_memory() {
  local key value _
  while read -r key value _; do
    case $key in
      VmHWM:) echo "runner_hwm_mb=$((value / 1024))" ;;
      VmRSS:) echo "runner_rss_mb=$((value / 1024))" ;;
    esac
  done <"/proc/$RUNNER_PID/status" >>"$1"
}

runner_stop() {
  stop_pid "${RUNNER_PID:-}" runner
  RUNNER_PID=""
}

# --- CPU sampling ------------------------------------------------------------
#
# A snapshot is a `T epoch_seconds` line, an `M busy_ticks total_ticks`
# line for the whole machine, and `P group pid ticks` lines (utime + stime)
# for our processes and every postgres process: `pgdb` (backends of $DB),
# `pgaux` (checkpointer, WAL writer, postmaster…), `pgother` (backends of
# other databases: other users of the shared server). bench/cpu.awk turns
# a file of snapshots into CPU figures. Only bash builtins: no fork per
# process, so sampling costs a few milliseconds a second.

# ticks PID: sets TICKS to utime + stime of PID; fails if it is gone.
ticks() {
  local line fields
  read -r line 2>/dev/null <"/proc/$1/stat" || return 1
  line=${line##*) }
  read -r -a fields <<<"$line"
  TICKS=$((fields[11] + fields[12]))
}

# snapshot GROUP=PID...: one snapshot on stdout.
snapshot() {
  local u n s i w q sq st _ pair dir comm title group
  printf 'T %s\n' "$EPOCHREALTIME"
  read -r _ u n s i w q sq st _ </proc/stat
  printf 'M %d %d\n' $((u + n + s + q + sq + st)) $((u + n + s + i + w + q + sq + st))
  for pair in "$@"; do
    ticks "${pair#*=}" && printf 'P %s %s %s\n' "${pair%%=*}" "${pair#*=}" "$TICKS"
  done
  for dir in /proc/[0-9]*; do
    read -r comm 2>/dev/null <"$dir/comm" || continue
    [[ $comm == postgres ]] || continue
    title=""
    read -r -d '' title 2>/dev/null <"$dir/cmdline" || true
    # An exiting process has no command line left: its group is unknown.
    [[ -n $title ]] || continue
    if [[ -n ${DB:-} && ( $title == *" $DB "* || $title == *" $DB" ) ]]; then
      group=pgdb
    elif [[ $title != postgres:* || $title == *checkpointer* || $title == *writer* ||
      $title == *launcher* || $title == *archiver* || $title == *startup* ]]; then
      group=pgaux
    else
      group=pgother
    fi
    ticks "${dir#/proc/}" && printf 'P %s %s %s\n' "$group" "${dir#/proc/}" "$TICKS"
  done
}

# machine_busy_pct: CPU use of the whole machine over the next second, in %
# of one core.
machine_busy_pct() {
  local u n s i w q sq st b1 t1
  read -r _ u n s i w q sq st _ </proc/stat
  b1=$((u + n + s + q + sq + st)) t1=$((u + n + s + i + w + q + sq + st))
  sleep 1
  read -r _ u n s i w q sq st _ </proc/stat
  echo $(((u + n + s + q + sq + st - b1) * 100 * NCPU / (u + n + s + i + w + q + sq + st - t1 + 1)))
}

# sampling_start FILE GROUP=PID...: a first snapshot now, then one a second
# (at most an hour) until sampling_stop; a `top -b -n1` after 3 s goes to
# FILE.top.
sampling_start() {
  SAMPLE_FILE=$1
  shift
  snapshot "$@" >"$SAMPLE_FILE"
  (
    # SIGTERM ends the sampler at once (`wait` is interruptible), never in
    # the middle of writing a snapshot (each is written by one printf).
    trap 'exit 0' TERM
    local k snap
    for ((k = 0; k < 3600; k++)); do
      sleep 1 &
      wait $!
      snap=$(snapshot "$@")
      printf '%s\n' "$snap"
      if ((k == 2)); then top -b -n1 -w 200 | head -n 25 >"$SAMPLE_FILE.top" 2>&1 || true; fi
    done
  ) >>"$SAMPLE_FILE" &
  SAMPLER_PID=$!
  SAMPLE_PAIRS=("$@")
}

# sampling_stop KV_FILE: a last snapshot; appends the CPU figures to
# KV_FILE and writes the per-second series to FILE.series.
sampling_stop() {
  kill -TERM "$SAMPLER_PID" 2>/dev/null || true
  wait "$SAMPLER_PID" 2>/dev/null || true
  SAMPLER_PID=""
  snapshot "${SAMPLE_PAIRS[@]}" >>"$SAMPLE_FILE"
  awk -v hz="$CLK_TCK" -v ncpu="$NCPU" -f "$BENCH_DIR/cpu.awk" "$SAMPLE_FILE" >>"$1"
  awk -v hz="$CLK_TCK" -v ncpu="$NCPU" -f "$BENCH_DIR/series.awk" "$SAMPLE_FILE" >"$SAMPLE_FILE.series"
}
