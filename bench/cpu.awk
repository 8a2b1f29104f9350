# CPU figures from a file of snapshots written by bench/lib.sh `snapshot`
# (T epoch_seconds / M busy_ticks total_ticks / P group pid ticks).
#
# Usage: awk -v hz=100 -v ncpu=2 -f bench/cpu.awk SNAPSHOTS
# Prints key=value lines; CPU is in % of one core (the machine tops out at
# ncpu × 100):
#   cpu_wall_s                 time from the first to the last snapshot
#   cpu_GROUP_s                CPU seconds of the group in that window
#   cpu_GROUP_pct              the same as a mean % of one core
#   cpu_GROUP_max_pct          the busiest interval (about one second)
#   cpu_machine_pct, _max_pct  every process and the kernel
#   cpu_unlisted_pct           machine minus all groups: other users' processes,
#                              the shared broker, kernel threads, this sampler
# A process first seen after the first snapshot counts from zero; one that
# exits counts until its last snapshot.

function close_snapshot(   key, parts, group, delta, interval, dt, busy_delta, total_delta, pct) {
    if (have_prev) {
        dt = t - prev_t
        split("", interval)
        for (key in cur) {
            split(key, parts, SUBSEP)
            group = parts[1]
            delta = cur[key] - ((key in prev) ? prev[key] : 0)
            if (delta < 0) delta = 0
            interval[group] += delta
            sum[group] += delta
        }
        busy_delta = busy - prev_busy
        total_delta = total - prev_total
        machine += busy_delta
        if (dt > 0) {
            for (group in interval) {
                pct = interval[group] / hz / dt * 100
                if (pct > max_pct[group]) max_pct[group] = pct
            }
            pct = total_delta > 0 ? busy_delta / total_delta * ncpu * 100 : 0
            if (pct > machine_max) machine_max = pct
        }
        wall += dt
    }
    split("", prev)
    for (key in cur) prev[key] = cur[key]
    split("", cur)
    prev_t = t; prev_busy = busy; prev_total = total
    have_prev = 1
}

$1 == "T" { if (started) close_snapshot(); started = 1; t = $2 + 0 }
$1 == "M" { busy = $2 + 0; total = $3 + 0 }
$1 == "P" { cur[$2, $3] = $4 + 0 }

END {
    if (started) close_snapshot()
    printf "cpu_wall_s=%.3f\n", wall
    listed = 0
    n = split("runner broker loadgen pgdb pgaux pgother", groups, " ")
    for (i = 1; i <= n; i++) {
        g = groups[i]
        secs = sum[g] / hz
        listed += secs
        printf "cpu_%s_s=%.2f\n", g, secs
        printf "cpu_%s_pct=%.0f\n", g, (wall > 0 ? secs / wall * 100 : 0)
        printf "cpu_%s_max_pct=%.0f\n", g, max_pct[g] + 0
    }
    machine_s = machine / hz
    printf "cpu_machine_pct=%.0f\n", (wall > 0 ? machine_s / wall * 100 : 0)
    printf "cpu_machine_max_pct=%.0f\n", machine_max + 0
    unlisted = machine_s - listed
    if (unlisted < 0) unlisted = 0
    printf "cpu_unlisted_pct=%.0f\n", (wall > 0 ? unlisted / wall * 100 : 0)
}
