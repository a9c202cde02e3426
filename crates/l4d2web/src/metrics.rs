//! The Prometheus exposition of `/metrics` (OpenMetrics text), collected
//! when scraped from what the panel already keeps: the `servers` and `jobs`
//! rows, the host's instance states, the live board and the log listener's
//! counters. Nothing here counts on its own, so a restart of the panel
//! loses no job history and nothing can drift from what the pages show.
//!
//! Labels carry server names, job kinds and states; never a secret, a
//! password, an address or a user.

use std::collections::HashMap;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use source_proto::listener::ListenerStats;
use sqlx::SqlitePool;

use crate::jobs::{JobStats, Jobs, DURATION_BUCKETS};
use crate::l4d2ctl::{HostClient, InstanceStatus};
use crate::live::{LiveHub, Reading};
use crate::servers::{self, DesiredState, ServerRow};

/// The scrape waits this long for the host's states; a slow host shows as
/// `left4me_host_up 0`, not as a hanging scrape (Prometheus' own timeout is
/// 10 s by default).
const HOST_TIMEOUT: Duration = Duration::from_secs(3);

/// What `/metrics` answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The observed states `left4me_server_state` has a series for.
const STATES: [&str; 8] = [
    "running",
    "starting",
    "stopping",
    "stopped",
    "crashed",
    "crash_loop",
    "not_started",
    "unknown",
];

/// The parts of the app metrics are read from.
pub struct Sources<'a> {
    pub pool: &'a SqlitePool,
    pub jobs: &'a Jobs,
    pub host: &'a HostClient,
    pub live: &'a LiveHub,
    /// Event streams (SSE) open right now.
    pub sse_viewers: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot read servers or jobs for metrics: {0}")]
    Db(#[from] sqlx::Error),
    #[error("cannot encode metrics: {0}")]
    Encode(#[from] std::fmt::Error),
}

/// Everything one scrape shows, read first so encoding never waits.
#[derive(Debug)]
struct Snapshot {
    servers: Vec<ServerRow>,
    /// None: the host did not answer (in time).
    host: Option<HashMap<String, InstanceStatus>>,
    readings: HashMap<i64, Reading>,
    jobs: JobStats,
    listener: Option<ListenerStats>,
    sse_viewers: u64,
}

/// The exposition text, `# EOF` included.
pub async fn render(src: Sources<'_>) -> Result<String, MetricsError> {
    let (servers, jobs, host) = tokio::join!(
        servers::list_all(src.pool),
        src.jobs.stats(),
        tokio::time::timeout(HOST_TIMEOUT, src.host.list()),
    );
    let host = match host {
        Ok(Ok(states)) => Some(states),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "metrics: the host's states are unavailable");
            None
        }
        Err(_) => {
            tracing::debug!(timeout = ?HOST_TIMEOUT, "metrics: the host did not answer in time");
            None
        }
    };
    let snapshot = Snapshot {
        servers: servers?,
        host,
        readings: src.live.readings(),
        jobs: jobs?,
        listener: src.live.listener_stats(),
        sse_viewers: src.sse_viewers,
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// A server's observed state in one snake_case word.
fn observed_state(row: &ServerRow, status: Option<&InstanceStatus>) -> &'static str {
    let Some(s) = status.filter(|s| s.exists) else {
        return "not_started";
    };
    let start_limit = s.service.result.as_deref() == Some("start-limit-hit");
    if !s.is_up() && (row.crash_loop || start_limit) {
        return "crash_loop";
    }
    match s.service.active_state.as_str() {
        "active" | "reloading" => "running",
        "activating" => "starting",
        "deactivating" => "stopping",
        "inactive" => "stopped",
        "failed" => "crashed",
        _ => "unknown",
    }
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

fn server(s: &ServerRow) -> Labels<'_> {
    vec![("server", s.name.as_str())]
}

/// One family of gauges: a descriptor, then a sample per label set.
fn gauges<'a, V: EncodeGaugeValue + Copy>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: impl IntoIterator<Item = (Labels<'a>, V)>,
) -> std::fmt::Result {
    let mut family = enc.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, value) in samples {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One family of counters (`_total` is added to the name).
fn counters<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels<'a>, u64)>,
) -> std::fmt::Result {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in samples {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let build = Info::new([("version", env!("CARGO_PKG_VERSION"))]);
        build.encode(enc.encode_descriptor(
            "left4me_build",
            "The running panel's version.",
            None,
            build.metric_type(),
        )?)?;
        gauges(
            &mut enc,
            "left4me_host_up",
            "Whether the host answered l4d2ctl list within the scrape's time limit.",
            None,
            [(vec![], i64::from(self.host.is_some()))],
        )?;
        self.encode_servers(&mut enc)?;
        self.encode_jobs(&mut enc)?;
        if let Some(stats) = &self.listener {
            encode_listener(&mut enc, stats)?;
        }
        gauges(
            &mut enc,
            "left4me_sse_viewers",
            "Live event streams (job logs, live panels, consoles) open now.",
            None,
            [(vec![], self.sse_viewers)],
        )
    }
}

impl Snapshot {
    fn encode_servers(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        gauges(
            enc,
            "left4me_server_desired_state",
            "What the owner last asked for: 1 for the desired state, 0 for the other.",
            None,
            self.servers.iter().flat_map(|s| {
                [DesiredState::Running, DesiredState::Stopped].map(|d| {
                    let mut labels = server(s);
                    labels.push(("state", d.as_str()));
                    (labels, i64::from(s.desired_state == d))
                })
            }),
        )?;
        if let Some(host) = &self.host {
            gauges(
                enc,
                "left4me_server_up",
                "Whether the host reports the server running or on its way there.",
                None,
                self.servers.iter().map(|s| {
                    let up = host.get(&s.name).is_some_and(InstanceStatus::is_up);
                    (server(s), i64::from(up))
                }),
            )?;
            gauges(
                enc,
                "left4me_server_state",
                "The server's observed state on the host: 1 for the current one.",
                None,
                self.servers.iter().flat_map(|s| {
                    let current = observed_state(s, host.get(&s.name));
                    STATES.map(|state| {
                        let mut labels = server(s);
                        labels.push(("state", state));
                        (labels, i64::from(state == current))
                    })
                }),
            )?;
            counters(
                enc,
                "left4me_server_restarts",
                "Automatic restarts by systemd since the server was last started (systemd backend only).",
                self.servers.iter().filter_map(|s| {
                    let n = host.get(&s.name)?.service.restarts?;
                    Some((server(s), u64::from(n)))
                }),
            )?;
            // Under systemd from the unit's cgroup, locally from the game's
            // process tree: what `l4d2ctl list` reported in this scrape.
            let mut family = enc.encode_descriptor(
                "left4me_server_cpu",
                "CPU time the running server has used since it started.",
                Some(&Unit::Seconds),
                MetricType::Counter,
            )?;
            for s in &self.servers {
                let Some(nsec) = host.get(&s.name).and_then(|h| h.service.cpu_usage_nsec) else {
                    continue;
                };
                ConstCounter::new(nsec as f64 / 1e9).encode(family.encode_family(&server(s))?)?;
            }
            gauges(
                enc,
                "left4me_server_memory",
                "Memory the running server holds now.",
                Some(&Unit::Bytes),
                self.servers.iter().filter_map(|s| {
                    let bytes = host.get(&s.name)?.service.memory_bytes?;
                    Some((server(s), i64::try_from(bytes).unwrap_or(i64::MAX)))
                }),
            )?;
        }
        counters(
            enc,
            "left4me_server_crashes",
            "Crashes the panel has seen since the server was created (both backends).",
            self.servers
                .iter()
                .map(|s| (server(s), u64::try_from(s.crash_count).unwrap_or(0))),
        )?;
        let polled: Vec<(&ServerRow, &Reading)> = self
            .servers
            .iter()
            .filter_map(|s| Some((s, self.readings.get(&s.id)?)))
            .collect();
        gauges(
            enc,
            "left4me_server_players",
            "Players on the server at its last A2S query, by kind (human or bot).",
            None,
            polled.iter().flat_map(|(s, r)| {
                [("human", r.humans), ("bot", r.bots)].map(|(kind, n)| {
                    let mut labels = server(s);
                    labels.push(("kind", kind));
                    (labels, n)
                })
            }),
        )?;
        gauges(
            enc,
            "left4me_server_player_slots",
            "The server's player limit at its last A2S query.",
            None,
            polled.iter().map(|(s, r)| (server(s), r.slots)),
        )?;
        gauges(
            enc,
            "left4me_server_a2s_latency",
            "How long the last answered A2S_INFO query of the server took.",
            Some(&Unit::Seconds),
            polled
                .iter()
                .filter_map(|(s, r)| Some((server(s), r.a2s_latency?.as_secs_f64()))),
        )
    }

    fn encode_jobs(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        gauges(
            enc,
            "left4me_jobs",
            "Jobs by kind and state, as stored.",
            None,
            self.jobs.states.iter().map(|s| {
                (
                    vec![("kind", s.kind.as_str()), ("state", s.state.as_str())],
                    s.count,
                )
            }),
        )?;
        gauges(
            enc,
            "left4me_job_queue_depth",
            "Jobs waiting for a worker.",
            None,
            [(vec![], self.jobs.queued())],
        )?;
        let mut family = enc.encode_descriptor(
            "left4me_job_duration",
            "How long finished jobs took from start to end, by kind and result.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for d in &self.jobs.durations {
            // The rows give cumulative counts; the encoder wants each
            // bucket's own, the last one unbounded.
            let mut buckets = Vec::with_capacity(DURATION_BUCKETS.len() + 1);
            let mut below = 0;
            for (upper, cumulative) in DURATION_BUCKETS.iter().zip(d.buckets) {
                buckets.push((*upper, cumulative.saturating_sub(below)));
                below = cumulative;
            }
            buckets.push((f64::INFINITY, d.count.saturating_sub(below)));
            let labels: Labels = vec![("kind", d.kind.as_str()), ("result", d.result.as_str())];
            family
                .encode_family(&labels)?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    d.sum_secs, d.count, &buckets, None,
                )?;
        }
        Ok(())
    }
}

fn encode_listener(enc: &mut DescriptorEncoder, stats: &ListenerStats) -> std::fmt::Result {
    counters(
        enc,
        "left4me_log_packets_received",
        "Datagrams the game-log listener received.",
        [(vec![], stats.received)],
    )?;
    counters(
        enc,
        "left4me_log_packets_accepted",
        "Log datagrams attributed to a server by their secret.",
        [(vec![], stats.accepted)],
    )?;
    counters(
        enc,
        "left4me_log_packets_dropped",
        "Log datagrams dropped, by reason.",
        [
            ("no_secret", stats.dropped_no_secret),
            ("unknown_secret", stats.dropped_unknown_secret),
            ("malformed", stats.dropped_malformed),
            ("too_long", stats.dropped_too_long),
            ("overloaded", stats.dropped_overloaded),
        ]
        .map(|(reason, n)| (vec![("reason", reason)], n)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{Durations, JobState, StateCount};
    use l4d2_contract::status::ServiceState;

    fn row(id: i64, name: &str, desired: DesiredState) -> ServerRow {
        ServerRow {
            id,
            name: name.into(),
            owner_id: 1,
            blueprint_id: 1,
            blueprint_name: "bp".into(),
            blueprint_updated_at: String::new(),
            port: 27015,
            desired_state: desired,
            deleting: false,
            created_at: String::new(),
            crash_count: 2,
            last_crash_at: None,
            last_exit: None,
            crash_loop: false,
            pinned_build: None,
        }
    }

    fn status(name: &str, active: &str, restarts: Option<u32>) -> InstanceStatus {
        InstanceStatus {
            name: name.into(),
            exists: true,
            backend: "systemd".into(),
            port: Some(27015),
            service: ServiceState {
                active_state: active.into(),
                restarts,
                ..ServiceState::stopped()
            },
        }
    }

    fn encode(s: Snapshot) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(s));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            servers: vec![
                row(1, "alpha", DesiredState::Running),
                row(2, "beta", DesiredState::Stopped),
            ],
            host: Some(HashMap::from([(
                "alpha".to_string(),
                InstanceStatus {
                    service: ServiceState {
                        cpu_usage_nsec: Some(1_500_000_000),
                        memory_bytes: Some(734_003_200),
                        ..status("alpha", "active", Some(3)).service
                    },
                    ..status("alpha", "active", Some(3))
                },
            )])),
            readings: HashMap::from([(
                1,
                Reading {
                    humans: 3,
                    bots: 2,
                    slots: 8,
                    a2s_latency: Some(Duration::from_millis(12)),
                },
            )]),
            jobs: JobStats {
                states: vec![StateCount {
                    kind: "some-kind".into(),
                    state: JobState::Queued,
                    count: 4,
                }],
                durations: vec![Durations {
                    kind: "some-kind".into(),
                    result: JobState::Succeeded,
                    count: 3,
                    sum_secs: 70.0,
                    buckets: [0, 1, 1, 1, 2, 2, 2, 2, 2, 2],
                }],
            },
            listener: Some(ListenerStats {
                received: 10,
                accepted: 7,
                dropped_unknown_secret: 3,
                ..ListenerStats::default()
            }),
            sse_viewers: 5,
        }
    }

    #[test]
    fn every_metric_from_the_snapshot() {
        let text = encode(snapshot());
        for line in [
            &format!("left4me_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION")),
            "left4me_host_up 1",
            "left4me_server_up{server=\"alpha\"} 1",
            "left4me_server_up{server=\"beta\"} 0",
            "left4me_server_state{server=\"alpha\",state=\"running\"} 1",
            "left4me_server_state{server=\"alpha\",state=\"stopped\"} 0",
            "left4me_server_state{server=\"beta\",state=\"not_started\"} 1",
            "left4me_server_desired_state{server=\"beta\",state=\"stopped\"} 1",
            "left4me_server_desired_state{server=\"beta\",state=\"running\"} 0",
            "left4me_server_restarts_total{server=\"alpha\"} 3",
            "left4me_server_crashes_total{server=\"alpha\"} 2",
            "left4me_server_players{server=\"alpha\",kind=\"human\"} 3",
            "left4me_server_players{server=\"alpha\",kind=\"bot\"} 2",
            "left4me_server_player_slots{server=\"alpha\"} 8",
            "left4me_server_a2s_latency_seconds{server=\"alpha\"} 0.012",
            "left4me_server_cpu_seconds_total{server=\"alpha\"} 1.5",
            "left4me_server_memory_bytes{server=\"alpha\"} 734003200",
            "left4me_jobs{kind=\"some-kind\",state=\"queued\"} 4",
            "left4me_job_queue_depth 4",
            "left4me_job_duration_seconds_sum{kind=\"some-kind\",result=\"succeeded\"} 70.0",
            "left4me_job_duration_seconds_count{kind=\"some-kind\",result=\"succeeded\"} 3",
            "left4me_job_duration_seconds_bucket{le=\"5.0\",kind=\"some-kind\",result=\"succeeded\"} 1",
            "left4me_job_duration_seconds_bucket{le=\"60.0\",kind=\"some-kind\",result=\"succeeded\"} 2",
            "left4me_job_duration_seconds_bucket{le=\"+Inf\",kind=\"some-kind\",result=\"succeeded\"} 3",
            "left4me_log_packets_received_total 10",
            "left4me_log_packets_dropped_total{reason=\"unknown_secret\"} 3",
            "left4me_sse_viewers 5",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
        // A server nobody polled has no player numbers rather than zeros.
        assert!(!text.contains("left4me_server_players{server=\"beta\""));
        assert!(!text.contains("left4me_server_memory_bytes{server=\"beta\""));
        assert!(!text.contains("left4me_server_cpu_seconds_total{server=\"beta\""));
    }

    #[test]
    fn a_host_that_does_not_answer_leaves_out_what_only_it_knows() {
        let text = encode(Snapshot {
            host: None,
            listener: None,
            ..snapshot()
        });
        assert!(text.lines().any(|l| l == "left4me_host_up 0"), "{text}");
        for absent in [
            "left4me_server_up{",
            "left4me_server_state{",
            "left4me_server_restarts",
            "left4me_log_packets",
        ] {
            assert!(!text.contains(absent), "{absent} in\n{text}");
        }
        // What the database and the live board know is still there.
        assert!(text.contains("left4me_server_desired_state{server=\"alpha\",state=\"running\"} 1"));
        assert!(text.contains("left4me_server_players{server=\"alpha\",kind=\"human\"} 3"));
    }

    #[test]
    fn observed_states_in_snake_case() {
        let r = row(1, "a", DesiredState::Running);
        assert_eq!(observed_state(&r, None), "not_started");
        for (active, word) in [
            ("active", "running"),
            ("activating", "starting"),
            ("deactivating", "stopping"),
            ("inactive", "stopped"),
            ("failed", "crashed"),
            ("maintenance", "unknown"),
        ] {
            assert_eq!(observed_state(&r, Some(&status("a", active, None))), word);
            assert!(STATES.contains(&word));
        }
        let looping = ServerRow {
            crash_loop: true,
            ..row(1, "a", DesiredState::Running)
        };
        assert_eq!(
            observed_state(&looping, Some(&status("a", "failed", None))),
            "crash_loop"
        );
        let mut limit = status("a", "failed", None);
        limit.service.result = Some("start-limit-hit".into());
        assert_eq!(observed_state(&r, Some(&limit)), "crash_loop");
        assert!(STATES.contains(&"crash_loop"));
    }
}
