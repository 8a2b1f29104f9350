//! Compiles `source:`: broker URL, subscriptions, topic pattern and limits.

use std::time::Duration;

use crate::config::load::RawPipeline;
use crate::graph::plan::{MqttPlan, SourcePlan};
use crate::secret::Secret;
use crate::source::topic::TopicPattern;

use super::pipeline::Names;

pub(super) fn compile(raw: &mut RawPipeline, names: &Names) -> Option<SourcePlan> {
    let config = raw.source.clone()?;
    let mqtt = &config.mqtt;
    let mut ok = true;
    let receive_maximum = mqtt
        .receive_maximum
        .unwrap_or_else(|| u16::try_from(config.queue).unwrap_or(u16::MAX));

    let endpoint = match parse_mqtt_url(&mqtt.url) {
        Ok(hp) => Some(hp),
        Err(e) => {
            raw.error(
                "source.mqtt.url",
                e,
                Some("use mqtt://host:1883 (or tcp://host:port)".into()),
            );
            None
        }
    };
    if mqtt.client_id.is_empty() {
        ok = false;
        raw.error(
            "source.mqtt.client_id",
            "must not be empty",
            Some("a fixed client id lets the broker keep our session while we are down".into()),
        );
    }
    if mqtt.subscriptions.is_empty() {
        ok = false;
        raw.error(
            "source.mqtt.subscriptions",
            "no subscriptions",
            Some("add e.g. `- { filter: \"traksense/#\", qos: 1 }`".into()),
        );
    }
    for (i, sub) in mqtt.subscriptions.iter().enumerate() {
        if let Err(e) = check_filter(&sub.filter) {
            ok = false;
            raw.error(
                &format!("source.mqtt.subscriptions[{i}].filter"),
                e,
                Some(
                    "`+` stands for one whole level and `#` for the rest of the topic, e.g. \
                     traksense/+/+/+/telem or traksense/#"
                        .into(),
                ),
            );
        }
        if sub.qos > 2 {
            ok = false;
            raw.error(
                &format!("source.mqtt.subscriptions[{i}].qos"),
                format!("QoS {} does not exist", sub.qos),
                Some("use 1 (at least once); 0 gives no delivery guarantee".into()),
            );
        }
    }
    if receive_maximum == 0 {
        ok = false;
        raw.error(
            "source.mqtt.receive_maximum",
            "must be at least 1",
            Some("leave it out: it then follows source.queue (capped at 65535)".into()),
        );
    }
    if config.max_payload_bytes == 0 {
        ok = false;
        raw.error(
            "source.max_payload_bytes",
            "must be at least 1",
            Some("the contract's default is 262144 (256 KiB)".into()),
        );
    }
    if config.max_payload_bytes as u64 >= u64::from(mqtt.max_packet_bytes) {
        ok = false;
        raw.error(
            "source.mqtt.max_packet_bytes",
            format!(
                "{} is not above max_payload_bytes ({})",
                mqtt.max_packet_bytes, config.max_payload_bytes
            ),
            Some(
                "raise it: a packet over this limit is discarded by the broker and never \
                 reaches the dead-letter table"
                    .into(),
            ),
        );
    }
    if config.queue < usize::from(receive_maximum) {
        ok = false;
        raw.error(
            "source.queue",
            format!(
                "{} is below source.mqtt.receive_maximum ({})",
                config.queue, receive_maximum
            ),
            Some(
                "the source queue must hold every message the broker may have in flight, \
                 or the MQTT event loop would stall; raise queue or lower receive_maximum"
                    .into(),
            ),
        );
    }
    let topic = match TopicPattern::parse(&config.topic) {
        Ok(p) => Some(p),
        Err(e) => {
            raw.error(
                "source.topic",
                e,
                Some("e.g. traksense/{tenant}/{site}/{device}/{kind}".into()),
            );
            None
        }
    };
    let next = names.resolve(raw, "source.next", &config.next);
    let credentials = match (&mqtt.username, &mqtt.password) {
        (Some(u), p) if !u.is_empty() => {
            Some((u.clone(), Secret::new(p.clone().unwrap_or_default())))
        }
        _ => None,
    };
    let (host, port) = endpoint?;
    ok.then_some(())?;
    Some(SourcePlan {
        mqtt: MqttPlan {
            host,
            port,
            client_id: mqtt.client_id.clone(),
            credentials,
            subscriptions: mqtt
                .subscriptions
                .iter()
                .map(|s| (s.filter.clone(), s.qos))
                .collect(),
            keep_alive: Duration::from_secs(mqtt.keep_alive_secs.max(1)),
            session_expiry_secs: mqtt.session_expiry_secs,
            receive_maximum,
            max_packet_bytes: mqtt.max_packet_bytes,
        },
        topic: topic?,
        max_payload_bytes: config.max_payload_bytes,
        queue: config.queue,
        next: next?,
    })
}

fn parse_mqtt_url(text: &str) -> Result<(String, u16), String> {
    let url = url::Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "mqtt" | "tcp") {
        return Err(format!("unsupported scheme {:?}", url.scheme()));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("the URL has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok((host, url.port().unwrap_or(1883)))
}

/// Checks an MQTT topic filter (with an optional `$share/group/` prefix).
fn check_filter(filter: &str) -> Result<(), String> {
    let inner = match filter.strip_prefix("$share/") {
        Some(rest) => match rest.split_once('/') {
            Some((group, inner)) if !group.is_empty() && !group.contains(['+', '#']) => inner,
            _ => return Err(format!("{filter:?}: expected $share/GROUP/FILTER")),
        },
        None => filter,
    };
    if inner.is_empty() {
        return Err("empty topic filter".into());
    }
    let levels: Vec<&str> = inner.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        let wildcard_ok = match *level {
            "#" => i == levels.len() - 1,
            "+" => true,
            l => !l.contains(['+', '#']),
        };
        if !wildcard_ok {
            return Err(format!(
                "{filter:?}: `+` must be a whole level and `#` the whole last level"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_urls() {
        assert!(check_filter("$share/ingest/traksense/+/+/+/telem").is_ok());
        assert!(check_filter("traksense/#").is_ok());
        assert!(check_filter("traksense/#/x").is_err());
        assert!(check_filter("traksense/a+").is_err());
        assert!(check_filter("$share//a").is_err());
        assert_eq!(
            parse_mqtt_url("mqtt://127.0.0.1").unwrap(),
            ("127.0.0.1".into(), 1883)
        );
        assert_eq!(parse_mqtt_url("tcp://h:1884").unwrap(), ("h".into(), 1884));
        assert!(parse_mqtt_url("http://h").is_err());
    }
}
