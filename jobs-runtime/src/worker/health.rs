//! The health endpoint for orchestrators (`--health ADDR`, [`Worker::health`](super::Worker::
//! health); also on `--web`, beside the dashboard), as Sidekiq Enterprise's
//! `config.health_check(port)`, with Kubernetes' names:
//!
//! - `GET /livez`: 200 while the last heartbeat landed within `heartbeat_ttl` (60 s), the time
//!   Redis keeps this process's hash: past it, dashboards and Sidekiq's API no longer see the
//!   process. Before the first beat, the time since start counts instead. 503 otherwise.
//! - `GET /readyz`: 200 when the process has beaten once, is live, is neither quiet (TSTP, a
//!   dashboard's Quiet) nor shutting down, and Redis answers `PING` within [`PING_TIMEOUT`].
//!   503 otherwise.
//!
//! Each answers a short JSON object: `{"status":"ok","last_beat_s":1.204}`, or
//! `{"status":"unavailable","reason":"…","last_beat_s":…}`. They need no password and no
//! allowed host name, on `--web` too: they change nothing and show nothing of the jobs, and a
//! probe cannot type a password. Served with the `web` feature (axum); without it, asking for
//! them is a start-up error that says so.
//!
//! The listener of `--health` is bound before the worker connects to Redis, so a taken port
//! stops it at once, and a worker waiting for Redis answers "not ready"; it serves until the
//! worker has stopped.

// Without the `web` feature nothing serves the probes; they stay, for the start-up error's
// sake and for the tests.
#![cfg_attr(not(feature = "web"), allow(dead_code))]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::control::Control;
use super::liveness::Pulse;
use crate::client::Client;
use crate::error::Error;

/// The liveness probe's path.
pub(crate) const LIVE_PATH: &str = "/livez";

/// The readiness probe's path.
pub(crate) const READY_PATH: &str = "/readyz";

/// How long a worker that has not beaten yet (waiting for Redis at start, say) counts as live:
/// restarting it would not bring Redis back, so an orchestrator should not, for a while; it is
/// not ready meanwhile.
pub(crate) const STARTUP_GRACE: Duration = Duration::from_secs(10 * 60);

/// How long readiness waits for Redis to answer `PING`: under Kubernetes' default probe
/// timeout (1 s) plus the answer's way back.
pub(crate) const PING_TIMEOUT: Duration = Duration::from_millis(800);

/// What the probes read: the worker's heartbeat, its phase and its Redis.
#[derive(Debug, Clone)]
pub(crate) struct Probes {
    /// When the worker started: liveness counts from here until the first beat.
    started: Instant,
    /// Where the heartbeat notes the beats that land.
    pulse: Arc<Pulse>,
    /// Whether the worker is quiet or stopping.
    control: Control,
    /// The Redis to ping.
    client: Client,
    /// How old the last beat may be for the process to be live: the heartbeat's TTL.
    bound: Duration,
    /// How long the process counts as live before its first beat: [`STARTUP_GRACE`], or the
    /// heartbeat's TTL if that is longer.
    startup: Duration,
}

/// A probe's answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Verdict {
    /// 200 when true, 503 when not.
    pub(crate) ok: bool,
    /// The JSON body.
    pub(crate) body: Value,
}

impl Probes {
    /// Probes of the worker whose heartbeat reports to `pulse`, beating within `bound`.
    pub(crate) fn new(
        pulse: Arc<Pulse>,
        control: Control,
        client: Client,
        bound: Duration,
    ) -> Self {
        Self {
            started: Instant::now(),
            pulse,
            control,
            client,
            bound,
            startup: bound.max(STARTUP_GRACE),
        }
    }

    /// Liveness: the last heartbeat is within the bound; before the first, the start is within
    /// the startup grace.
    pub(crate) fn live(&self) -> Verdict {
        let beat = self.pulse.beat_age();
        let (age, bound) = match beat {
            Some(age) => (age, self.bound),
            None => (self.started.elapsed(), self.startup),
        };
        if age < bound {
            return verdict(None, beat);
        }
        let reason = match beat {
            Some(age) => format!(
                "no heartbeat has landed for {} s (the heartbeat's TTL is {} s)",
                age.as_secs(),
                self.bound.as_secs_f64()
            ),
            None => format!(
                "no heartbeat has landed since the start, {} s ago (the startup grace is {} s)",
                age.as_secs(),
                bound.as_secs_f64()
            ),
        };
        verdict(Some(reason), beat)
    }

    /// Readiness: live, started, not quiet or stopping, and Redis answers `PING` in time.
    pub(crate) async fn ready(&self) -> Verdict {
        let beat = self.pulse.beat_age();
        let live = self.live();
        let reason = if self.control.is_stopping() {
            Some("shutting down".to_owned())
        } else if self.control.is_quiet() {
            Some("quiet: taking no new jobs".to_owned())
        } else if !live.ok {
            return live;
        } else if beat.is_none() {
            Some("starting: no heartbeat has landed yet".to_owned())
        } else {
            self.ping().await.err()
        };
        verdict(reason, beat)
    }

    /// `PING`, within [`PING_TIMEOUT`]; the reason when Redis does not answer.
    async fn ping(&self) -> Result<(), String> {
        let command = redis::cmd("PING");
        let ping = self.client.redis().command::<String>(&command);
        match tokio::time::timeout(PING_TIMEOUT, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => {
                tracing::debug!(%error, "readiness: Redis does not answer PING");
                Err("Redis does not answer PING".to_owned())
            }
            Err(_) => Err(format!(
                "Redis did not answer PING within {} ms",
                PING_TIMEOUT.as_millis()
            )),
        }
    }
}

/// The verdict: ok without a `reason`; `beat` is the age of the last heartbeat.
fn verdict(reason: Option<String>, beat: Option<Duration>) -> Verdict {
    // Milliseconds are enough, and keep the number short.
    let last_beat_s = beat.map(|age| (age.as_millis() as f64) / 1000.0);
    match reason {
        None => Verdict {
            ok: true,
            body: json!({ "status": "ok", "last_beat_s": last_beat_s }),
        },
        Some(reason) => Verdict {
            ok: false,
            body: json!({ "status": "unavailable", "reason": reason, "last_beat_s": last_beat_s }),
        },
    }
}

/// The probes' routes, for `--health` and beside the dashboard on `--web`.
#[cfg(feature = "web")]
pub(crate) fn router(probes: Probes) -> axum::Router {
    use axum::extract::State;
    use axum::routing::get;

    let probes = Arc::new(probes);
    axum::Router::new()
        .route(
            LIVE_PATH,
            get(|State(probes): State<Arc<Probes>>| async move { answer(probes.live()) }),
        )
        .route(
            READY_PATH,
            get(|State(probes): State<Arc<Probes>>| async move { answer(probes.ready().await) }),
        )
        .with_state(probes)
}

/// A verdict as an HTTP answer: 200 or 503, JSON, never cached.
#[cfg(feature = "web")]
fn answer(verdict: Verdict) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
    use axum::response::IntoResponse;

    let status = if verdict.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [
            (CONTENT_TYPE, "application/json"),
            (CACHE_CONTROL, "no-store"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        format!("{}\n", verdict.body),
    )
        .into_response()
}

/// The `--health` server, its address already bound.
#[derive(Debug)]
pub(crate) struct HealthServer {
    /// The bound address.
    #[cfg(feature = "web")]
    listener: tokio::net::TcpListener,
    /// What it answers.
    #[cfg(feature = "web")]
    probes: Probes,
    /// Where, for the log.
    #[cfg(feature = "web")]
    address: SocketAddr,
}

impl HealthServer {
    /// Binds `address` for `probes`. Bound before the worker connects, so a taken port stops
    /// it at start, holding nothing, with an error that says so.
    #[cfg(feature = "web")]
    pub(crate) async fn bind(probes: Probes, address: SocketAddr) -> Result<Self, Error> {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|error| Error::Config {
                origin: "--health".to_owned(),
                reason: format!(
                    "cannot serve the health endpoint at {address} ({error}); choose another \
                     address"
                ),
            })?;
        Ok(Self {
            listener,
            probes,
            address,
        })
    }

    /// Without the `web` feature there is no HTTP server to answer probes.
    #[cfg(not(feature = "web"))]
    pub(crate) async fn bind(_probes: Probes, address: SocketAddr) -> Result<Self, Error> {
        Err(Error::Config {
            origin: "--health".to_owned(),
            reason: format!(
                "cannot serve the health endpoint at {address}: this build has no `web` \
                 feature; enable it (it is on by default) or drop --health"
            ),
        })
    }

    /// Serves until `shutdown` (the exit phase: the worker has stopped); the launcher does not
    /// wait for it.
    #[cfg(feature = "web")]
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let Self {
            listener,
            probes,
            address,
        } = self;
        tracing::info!(%address, "health endpoint listening ({LIVE_PATH}, {READY_PATH})");
        let served = axum::serve(listener, router(probes))
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::error!(%address, %error, "the health endpoint stopped");
        }
    }

    /// Never called: without the `web` feature, [`bind`](Self::bind) fails.
    #[cfg(not(feature = "web"))]
    pub(crate) async fn run(self, _shutdown: CancellationToken) {}
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::{Probes, Verdict};
    use crate::client::Client;
    use crate::worker::control::Control;
    use crate::worker::liveness::Pulse;

    fn probes(bound: Duration) -> (Probes, Arc<Pulse>, Control) {
        let pulse = Arc::new(Pulse::new(Duration::from_secs(10)));
        let control = Control::default();
        // Nothing listens on port 1: readiness cannot reach Redis, which these tests never
        // get as far as.
        let client = Client::builder()
            .url("redis://127.0.0.1:1/")
            .build()
            .unwrap();
        let probes = Probes::new(Arc::clone(&pulse), control.clone(), client, bound);
        (probes, pulse, control)
    }

    fn reason(verdict: &Verdict) -> &str {
        verdict.body["reason"].as_str().unwrap_or_default()
    }

    #[test]
    fn live_while_the_last_beat_is_within_the_bound() {
        let (probes, pulse, _) = probes(Duration::from_millis(50));
        let live = probes.live();
        assert!(live.ok, "counted from the start before the first beat");
        assert_eq!(live.body["last_beat_s"], serde_json::Value::Null);
        pulse.renewed_at(Instant::now());
        let live = probes.live();
        assert!(live.ok);
        assert_eq!(live.body["status"], "ok");
        assert!(live.body["last_beat_s"].is_f64());
        std::thread::sleep(Duration::from_millis(60));
        let dead = probes.live();
        assert!(!dead.ok);
        assert_eq!(dead.body["status"], "unavailable");
        assert!(
            reason(&dead).starts_with("no heartbeat has landed for"),
            "{}",
            dead.body
        );
    }

    #[test]
    fn never_beating_is_not_live_past_the_startup_grace() {
        let (mut probes, _, _) = probes(Duration::from_millis(20));
        assert_eq!(
            probes.startup,
            super::STARTUP_GRACE,
            "a worker waiting for Redis is left alone"
        );
        std::thread::sleep(Duration::from_millis(30));
        assert!(
            probes.live().ok,
            "within the grace, past the heartbeat's TTL"
        );
        probes.startup = Duration::from_millis(20);
        let dead = probes.live();
        assert!(!dead.ok);
        assert!(reason(&dead).contains("since the start"), "{}", dead.body);
    }

    #[tokio::test]
    async fn not_ready_when_starting_quiet_or_stopping() {
        let (probes, pulse, control) = probes(Duration::from_secs(60));
        let starting = probes.ready().await;
        assert!(!starting.ok);
        assert!(
            reason(&starting).starts_with("starting"),
            "{}",
            starting.body
        );
        pulse.renewed_at(Instant::now());
        control.quiet();
        let quiet = probes.ready().await;
        assert!(!quiet.ok);
        assert_eq!(reason(&quiet), "quiet: taking no new jobs");
        assert!(probes.live().ok, "a quiet worker is alive");
        control.stop();
        assert_eq!(reason(&probes.ready().await), "shutting down");
    }
}
