//! `/metrics`, `/healthz` and `/readyz` on the metrics port.
//!
//! Three fixed GET endpoints answered with `Connection: close`: small enough
//! that a hand-written HTTP/1.1 responder (bounded request size and time)
//! beats pulling a web framework into the runner.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::health::Health;
use super::metrics::Metrics;

/// Largest request head accepted.
const MAX_REQUEST: usize = 8 * 1024;
/// Longest time a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let (metrics, health) = (metrics.clone(), health.clone());
                tokio::spawn(async move {
                    if let Err(e) = answer(stream, &metrics, &health).await {
                        tracing::debug!(error = %e, "metrics request failed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer(mut stream: TcpStream, metrics: &Metrics, health: &Health) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let (method, path) = parse_request_line(&head);
    let (status, content_type, body) = route(method, path, metrics, health);
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        response.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&response).await?;
    stream.shutdown().await
}

/// Reads up to the blank line that ends the request head.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < MAX_REQUEST {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn parse_request_line(head: &str) -> (&str, &str) {
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("");
    (method, target.split('?').next().unwrap_or(""))
}

/// `(status line, content type, body)` for one request.
fn route(
    method: &str,
    path: &str,
    metrics: &Metrics,
    health: &Health,
) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if method != "GET" && method != "HEAD" {
        return ("405 Method Not Allowed", TEXT, "only GET\n".into());
    }
    match path {
        "/metrics" => match metrics.render() {
            Ok(body) => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body),
            Err(e) => ("500 Internal Server Error", TEXT, format!("{e}\n")),
        },
        "/healthz" => ("200 OK", TEXT, "ok\n".into()),
        "/readyz" if health.fully_ready() => ("200 OK", TEXT, health.describe()),
        "/readyz" => ("503 Service Unavailable", TEXT, health.describe()),
        _ => (
            "404 Not Found",
            TEXT,
            "try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_parsed_leniently() {
        assert_eq!(
            parse_request_line("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("GET", "/metrics")
        );
        assert_eq!(
            parse_request_line("GET /readyz?verbose=1 HTTP/1.0\r\n\r\n"),
            ("GET", "/readyz")
        );
        assert_eq!(parse_request_line(""), ("", ""));
    }

    #[test]
    fn readiness_needs_broker_subscriptions_and_database() {
        let metrics = Metrics::new().unwrap();
        let health = Health::default();
        assert_eq!(route("GET", "/healthz", &metrics, &health).0, "200 OK");
        assert_eq!(
            route("GET", "/readyz", &metrics, &health).0,
            "503 Service Unavailable"
        );
        health.set_broker_up(true);
        health.set_subscribed(true);
        assert_eq!(
            route("GET", "/readyz", &metrics, &health).0,
            "503 Service Unavailable"
        );
        health.set_db_up(true);
        assert_eq!(route("GET", "/readyz", &metrics, &health).0, "200 OK");
        assert_eq!(
            route("POST", "/metrics", &metrics, &health).0,
            "405 Method Not Allowed"
        );
        assert_eq!(route("GET", "/nope", &metrics, &health).0, "404 Not Found");
    }
}
