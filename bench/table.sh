# shellcheck shell=bash
# The results table of bench/run, from the key=value files in $OUT/runs/
# (one per scenario run: <scenario>.<rep>.kv). Sourced by bench/run.
#
# With --repeat, a figure is the median of its runs, followed by (min–max).
# A ratio is the median figure over the median ceiling of the same run of
# bench/run; "—" when that ceiling was not measured (see --only).

# values SCENARIO KEY: the numeric values of KEY over the scenario's runs, sorted.
values() {
  local f
  for f in "$OUT"/runs/"$1".*.kv; do
    [[ -e $f ]] && sed -n "s/^$2=//p" "$f" | tail -n 1
  done | grep -E '^[-+>]?[0-9.]+$' | sort -g
}

# med SCENARIO KEY: the median (lower median for an even count), or empty.
med() {
  local v
  mapfile -t v < <(values "$1" "$2")
  ((${#v[@]})) && echo "${v[$(((${#v[@]} - 1) / 2))]}"
  return 0
}

# fig SCENARIO KEY [UNIT]: "median UNIT", "median UNIT (min–max)", or "—".
fig() {
  local v unit=${3:+ $3}
  mapfile -t v < <(values "$1" "$2")
  case ${#v[@]} in
    0) echo "—" ;;
    1) echo "${v[0]}$unit" ;;
    *) echo "${v[$(((${#v[@]} - 1) / 2))]}$unit (${v[0]}–${v[${#v[@]} - 1]})" ;;
  esac
}

# ratio A B: A / B to two decimals, or "—".
ratio() {
  awk -v a="${1:-}" -v b="${2:-}" 'BEGIN {
    if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else printf "—" }'
}

# cores SCENARIO: the runner's mean CPU as cores, e.g. "0.84 cores".
cores() {
  local pct
  pct=$(med "$1" cpu_runner_pct)
  [[ -n $pct ]] && awk -v p="$pct" 'BEGIN { printf "%.2f cores", p / 100 }' || echo "—"
}

measured() { compgen -G "$OUT/runs/$1.*.kv" >/dev/null; }

one_decimal() { [[ -n $1 ]] && awk -v x="$1" 'BEGIN { printf "%.1f", x }' || echo "—"; }

render_results() {
  local mqtt1 mqtt10 pg e2e1 e2e10 e2e10m s
  mqtt1=$(med mqtt1 deliver_msgs_per_s)
  mqtt10=$(med mqtt10 deliver_msgs_per_s)
  pg=$(med pg copy_rows_per_s)
  e2e1=$(med e2e1 e2e_points_per_s)
  e2e10=$(med e2e10 e2e_points_per_s)
  e2e10m=$(med e2e10 e2e_msgs_per_s)

  echo "| figure | value | ceiling | ratio | target |"
  echo "|---|---|---|---|---|"
  measured mqtt1 && echo "| Mosquitto alone, 1 point/msg: publisher → subscriber, QoS 1 | $(fig mqtt1 deliver_msgs_per_s msg/s) | | | |"
  measured mqtt10 && echo "| Mosquitto alone, 10 points/msg | $(fig mqtt10 deliver_msgs_per_s msg/s) | | | |"
  measured pg && echo "| PostgreSQL alone: COPY into ts_measure (indexes on), $PG_CONNECTIONS connections | $(fig pg copy_rows_per_s rows/s) | | | |"
  measured e2e1 && echo "| **runner e2e, 1 point/msg** (first publish → last row committed) | $(fig e2e1 e2e_points_per_s points/s) | ${mqtt1:-—} (Mosquitto, 1 point/msg) | $(ratio "$e2e1" "$mqtt1") | ≥ 45000 and ≥ 0.70 |"
  measured e2e10 && echo "| **runner e2e, 10 points/msg** | $(fig e2e10 e2e_points_per_s points/s) | ${pg:-—} (PostgreSQL COPY) | $(ratio "$e2e10" "$pg") | ≥ 100000 and ≥ 0.75 |"
  measured e2e10 && echo "| runner e2e, 10 points/msg, in messages | $(fig e2e10 e2e_msgs_per_s msg/s) | ${mqtt10:-—} (Mosquitto, 10 points/msg) | $(ratio "$e2e10m" "$mqtt10") | |"
  if measured latency; then
    echo "| **latency device → commit at $LATENCY_RATE points/s**, p50 / p95 / p99, SQL \`ingested_at − ts\` | $(med latency sql_latency_p50_ms) / $(med latency sql_latency_p95_ms) / $(med latency sql_latency_p99_ms) ms (max $(med latency sql_latency_max_ms)) | | | p50 ≤ 20, p99 ≤ 200 ms |"
    echo "| the same from the runner's \`ingest_latency_seconds\` histogram | $(med latency hist_device_to_commit_p50_ms) / $(med latency hist_device_to_commit_p95_ms) / $(med latency hist_device_to_commit_p99_ms) ms | | | |"
    echo "| **runner CPU at $LATENCY_RATE points/s** | $(cores latency) (busiest second $(med latency cpu_runner_max_pct) %) | | | ≤ 1 core |"
    echo "| **runner RSS, steady at $LATENCY_RATE points/s** (end of run) / peak | $(med latency runner_rss_mb) / $(med latency runner_hwm_mb) MB | | | ≤ 64 MB |"
  fi
  measured burst && echo "| **runner peak RSS absorbing a $BURST_MSGS-message burst** ($BURST_POINTS points/msg) | $(fig burst runner_hwm_mb MB) (absorbed in $(one_decimal "$(med burst e2e_s)") s) | | | ≤ 160 MB |"
  measured profile && echo "| profile: \`perf record\` of the runner for $PROFILE_SECS s under an e2e10 backlog | $(fig profile profile_points_per_s points/s) committed meanwhile; $(med profile profile_runner_samples) runner samples at 499 Hz | | | |"
  for s in e2e1 e2e10; do
    measured "$s" || continue
    echo "| runner $s: CPU, CPU per point, peak RSS | $(cores "$s"), $(med "$s" runner_us_per_point) µs, $(med "$s" runner_hwm_mb) MB | | | |"
    echo "| runner $s: ts_measure transactions (\`ingest_batch_size\` count) and rows in each | $(med "$s" batches) × $(med "$s" rows_per_batch) rows | | | |"
    echo "| runner $s: its statements active in PostgreSQL at once (\`pg_stat_activity\` every 20 ms): 0 / 1 / ≥ 2 | $(med "$s" pg_active_0_pct) / $(med "$s" pg_active_1_pct) / $(med "$s" pg_active_2plus_pct) % of samples | | | |"
    echo "| runner $s: its backends' WAL write + fsync time (pg_stat_wal), share of e2e time | $(med "$s" pg_wal_write_s) + $(med "$s" pg_wal_sync_s) s = $(med "$s" pg_wal_io_share) of the time; $(med "$s" pg_wal_mb) MB WAL | | | |"
  done

  echo
  echo "CPU during each scenario, mean (busiest second), in % of one core; the machine has $((NCPU * 100)) %:"
  echo
  echo "| scenario | seconds | runner | postgres: bench db | postgres: aux | mosquitto | loadgen | other processes | machine | machine before |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  local s g row
  for s in "${ALL_SCENARIOS[@]}"; do
    measured "$s" || continue
    [[ -n $(med "$s" cpu_wall_s) ]] || continue
    row="| $s | $(med "$s" cpu_wall_s)"
    for g in runner pgdb pgaux broker loadgen; do
      row+=" | $(med "$s" "cpu_${g}_pct") ($(med "$s" "cpu_${g}_max_pct"))"
    done
    row+=" | $(med "$s" cpu_unlisted_pct) | $(med "$s" cpu_machine_pct) ($(med "$s" cpu_machine_max_pct)) | $(med "$s" busy_before_pct) |"
    echo "$row"
  done
  echo
  echo "\"other processes\" is the machine minus the listed groups (other users of this machine, the kernel); \"machine before\" is the whole machine in the second before the scenario started."

  local failed
  failed=$(grep -h '^check.*=FAILED' "$OUT"/runs/*.kv 2>/dev/null | sort | uniq -c || true)
  echo
  if [[ -n $failed ]]; then
    echo "Checks FAILED:"
    echo '```'
    echo "$failed"
    echo '```'
  else
    echo "Checks: every e2e run stored exactly its points (\`count(*)\` and \`count(DISTINCT v_num)\`), $INVALID dead letters and $DUP_ACKS ACK rows per run; every message was acknowledged."
  fi
}

machine_description() {
  local mem
  mem=$(free -h | awk '/^Mem:/ { print $2 " total, " $7 " available" }')
  echo "- machine: \`nproc\` $NCPU, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), memory $mem (\`free -h\`)"
  echo "- load average at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- $(psql "$PG_BASE/postgres" -X -A -t -c 'select version()' | cut -d, -f1), $("$MOSQUITTO" -h 2>/dev/null | head -n 1), $(rustc --version 2>/dev/null || echo rustc unknown), profile $BUILD_PROFILE"
  echo "- runner knobs: INGEST_QUEUE_MAX=${INGEST_QUEUE_MAX:-default} INGEST_BATCH_SIZE=${INGEST_BATCH_SIZE:-default} INGEST_BATCH_MS=${INGEST_BATCH_MS:-default} INGEST_BATCH_PARALLEL=${INGEST_BATCH_PARALLEL:-default} INGEST_WORKER_THREADS=${INGEST_WORKER_THREADS:-default} DB_POOL_MAX=${DB_POOL_MAX:-default}"
  echo "- load: $TENANTS tenants × $DEVICES devices, $CONNECTIONS publisher connections; mqtt1 $MQTT1_MSGS msgs, mqtt10 $MQTT10_MSGS, pg $PG_MSGS × 10 rows, e2e1 $E2E1_MSGS, e2e10 $E2E10_MSGS, latency ${LATENCY_SECS} s, burst $BURST_MSGS; repeats $REPEAT"
  echo "- raw logs: \`$OUT\` (not committed)"
}
