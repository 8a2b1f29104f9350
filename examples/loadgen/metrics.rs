//! End-to-end completion: waits until the runner has committed every valid
//! point and acknowledged every message, confirms the rows in SQL, and reads
//! the runner's latency histograms.
//!
//! Why the runner's counter and not `count(*)` for the clock: counting a
//! growing `ts_measure` is a sequential scan that competes with the inserts
//! on a 2-core machine; `/metrics` costs the runner well under a
//! millisecond. So `ingest_points_total` (points *committed*) is polled every
//! [`POLL`], which stops the clock; then `count(*)` must show the same number
//! of rows (waited for, bounded, if it does not yet).

use std::time::Duration;

use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout, Instant};

use crate::activity::Activity;
use crate::report::Report;
use crate::shape::Shape;

/// How often `/metrics` is read while waiting: the end time is known to
/// within this.
const POLL: Duration = Duration::from_millis(20);
/// How often `count(*)` is retried when the counter was ahead of it.
const COUNT_POLL: Duration = Duration::from_millis(200);
/// Longest time for one `/metrics` request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Waits for the commit of every valid point (and the runner's PUBACK of
/// every message), then records points/s from `first_publish`, the SQL row
/// count and the runner's latency quantiles; stops `activity` at the commit.
pub async fn wait_committed(
    url: &str,
    database_url: Option<&str>,
    shape: &Shape,
    first_publish: Instant,
    deadline: Instant,
    activity: Option<Activity>,
    report: &mut Report,
) {
    let expected = shape.valid_points() as f64;
    let mut points = 0.0;
    let committed = loop {
        if let Ok(text) = get(url).await {
            points = sum(&text, "ingest_points_total");
            if points >= expected {
                break Some(Instant::now());
            }
        }
        if Instant::now() + POLL > deadline {
            break None;
        }
        sleep(POLL).await;
    };
    if let Some(activity) = activity {
        activity.finish(report).await;
    }
    let Some(committed) = committed else {
        report.fail(format!(
            "runner committed {points} of {expected} points by the deadline"
        ));
        return;
    };
    let took = committed - first_publish;
    report.seconds("e2e_s", took);
    report.rate("e2e_points_per_s", shape.valid_points(), took);
    report.rate("e2e_msgs_per_s", shape.messages, took);

    // Dead letters and ACKs commit in their own sinks; the runner's PUBACK
    // count says every message is settled.
    let total = shape.total_publishes() as f64;
    let mut acked = 0.0;
    while Instant::now() < deadline {
        if let Ok(text) = get(url).await {
            acked = sum(&text, "ingest_acknowledged_total");
            if acked >= total {
                break;
            }
        }
        sleep(POLL).await;
    }
    report.set("runner_acked", acked);
    report.seconds("settled_s", first_publish.elapsed());
    if acked < total {
        report.fail(format!("runner acknowledged {acked} of {total} messages"));
    }

    if let Some(database_url) = database_url {
        count_rows(database_url, shape.valid_points(), deadline, report).await;
    }
    match get(url).await {
        Ok(text) => {
            for (name, key) in [
                ("ingest_latency_seconds", "hist_device_to_commit"),
                ("ingest_pipeline_latency_seconds", "hist_receive_to_commit"),
            ] {
                let buckets = buckets(&text, name);
                for (q, suffix) in [(0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")] {
                    report.set(format!("{key}_{suffix}"), quantile_ms(&buckets, q));
                }
            }
        }
        Err(e) => report.fail(format!("cannot read {url}: {e}")),
    }
}

/// `count(*)` of `ts_measure`, retried until it reaches `expected` or the
/// deadline.
async fn count_rows(database_url: &str, expected: u64, deadline: Instant, report: &mut Report) {
    let mut conn = match PgConnection::connect(database_url).await {
        Ok(conn) => conn,
        Err(e) => {
            report.fail(format!("cannot connect to the database: {e}"));
            return;
        }
    };
    let mut rows = 0;
    loop {
        match sqlx::query_scalar::<_, i64>("SELECT count(*) FROM ts_measure")
            .fetch_one(&mut conn)
            .await
        {
            Ok(n) => rows = u64::try_from(n).unwrap_or(0),
            Err(e) => report.fail(format!("count(*): {e}")),
        }
        if rows >= expected || Instant::now() + COUNT_POLL > deadline {
            break;
        }
        sleep(COUNT_POLL).await;
    }
    let _ = conn.close().await;
    report.set("sql_rows", rows);
    if rows != expected {
        report.fail(format!("ts_measure holds {rows} rows, expected {expected}"));
    }
}

/// GETs `url` (`http://host:port/path`) and returns the body.
pub async fn get(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("bad URL {url:?}: {e}"))?;
    let host = parsed.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = parsed.port().unwrap_or(80);
    let request = async {
        let mut stream = TcpStream::connect((host.as_str(), port)).await?;
        let head = format!(
            "GET {} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n",
            parsed.path()
        );
        stream.write_all(head.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = timeout(REQUEST_TIMEOUT, request)
        .await
        .map_err(|_| format!("{url}: no answer in {REQUEST_TIMEOUT:?}"))?
        .map_err(|e| format!("{url}: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{url}: malformed response"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!("{url}: {}", head.lines().next().unwrap_or("")));
    }
    Ok(body.to_owned())
}

/// The sum over every label set of the samples named exactly `name`.
pub fn sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|line| sample(line, name))
        .map(|(_, value)| value)
        .sum()
}

/// `(labels, value)` of a sample line of metric `name`.
fn sample<'a>(line: &'a str, name: &str) -> Option<(&'a str, f64)> {
    let rest = line.strip_prefix(name)?;
    let (labels, value) = if let Some(labelled) = rest.strip_prefix('{') {
        let (labels, value) = labelled.split_once('}')?;
        (labels, value)
    } else if rest.starts_with(' ') {
        ("", rest)
    } else {
        return None;
    };
    Some((labels, value.split_whitespace().next()?.parse().ok()?))
}

/// Cumulative buckets `(upper bound, count)` of histogram `name`, sorted,
/// summed over label sets.
fn buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    let bucket_name = format!("{name}_bucket");
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for (labels, count) in text.lines().filter_map(|l| sample(l, &bucket_name)) {
        let Some(le) = labels
            .split(',')
            .find_map(|label| label.trim().strip_prefix("le=\""))
            .and_then(|v| v.strip_suffix('"'))
        else {
            continue;
        };
        let bound = if le == "+Inf" {
            f64::INFINITY
        } else {
            match le.parse() {
                Ok(bound) => bound,
                Err(_) => continue,
            }
        };
        match buckets.iter_mut().find(|(b, _)| *b == bound) {
            Some(bucket) => bucket.1 += count,
            None => buckets.push((bound, count)),
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

/// Prometheus' `histogram_quantile`, in milliseconds: linear within the
/// bucket that holds rank `q × count`; `>BOUND` when it falls in `+Inf`.
fn quantile_ms(buckets: &[(f64, f64)], q: f64) -> String {
    let last_finite = buckets
        .iter()
        .rev()
        .find(|(bound, _)| bound.is_finite())
        .map_or(0.0, |(bound, _)| *bound);
    match quantile(buckets, q) {
        None => "none".to_owned(),
        Some(s) if s.is_infinite() => format!(">{:.0}", last_finite * 1000.0),
        Some(s) => format!("{:.1}", s * 1000.0),
    }
}

/// Prometheus' `histogram_quantile`: linear within the bucket that holds
/// rank `q × count`; infinite when it falls in `+Inf`.
fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(upper, count) in buckets {
        if count >= rank {
            if upper.is_infinite() {
                return Some(f64::INFINITY);
            }
            let share = if count > below {
                (rank - below) / (count - below)
            } else {
                0.0
            };
            return Some(lower + (upper - lower) * share);
        }
        (lower, below) = (upper, count);
    }
    None
}
