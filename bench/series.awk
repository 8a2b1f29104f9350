# A per-second CPU series from a file of snapshots written by bench/lib.sh
# `snapshot` (see bench/cpu.awk for the format): one line per interval with
# each group's CPU in % of one core, how many of the scenario database's
# backends were busy in it (over 5 % of a core each), and the whole machine.
#
# Usage: awk -v hz=100 -v ncpu=2 -f bench/series.awk SNAPSHOTS

function close_snapshot(   key, parts, delta, interval, active, n, dt) {
    if (have_prev) {
        dt = t - prev_t
        split("", interval); split("", active)
        for (key in cur) {
            split(key, parts, SUBSEP)
            delta = cur[key] - ((key in prev) ? prev[key] : 0)
            if (delta < 0) delta = 0
            interval[parts[1]] += delta
            if (parts[1] == "pgdb") active[parts[2]] = delta
        }
        n = 0
        for (key in active) if (dt > 0 && pct(active[key], dt) > 5) n++
        if (dt > 0)
            printf "%6.1f s  runner %3.0f  pgdb %3.0f (%d backends > 5 %%)  pgaux %3.0f  broker %3.0f  loadgen %3.0f  pgother %3.0f  machine %3.0f\n",
                t - t0, pct(interval["runner"], dt), pct(interval["pgdb"], dt), n, pct(interval["pgaux"], dt),
                pct(interval["broker"], dt), pct(interval["loadgen"], dt), pct(interval["pgother"], dt),
                (total - prev_total > 0 ? (busy - prev_busy) / (total - prev_total) * ncpu * 100 : 0)
    } else {
        t0 = t
        print "  time  CPU in % of one core, per second (machine: all " ncpu " cores)"
    }
    split("", prev)
    for (key in cur) prev[key] = cur[key]
    split("", cur)
    prev_t = t; prev_busy = busy; prev_total = total
    have_prev = 1
}

function pct(ticks, dt) { return ticks / hz / dt * 100 }

$1 == "T" { if (started) close_snapshot(); started = 1; t = $2 + 0 }
$1 == "M" { busy = $2 + 0; total = $3 + 0 }
$1 == "P" { cur[$2, $3] = $4 + 0 }
END { if (started) close_snapshot() }
