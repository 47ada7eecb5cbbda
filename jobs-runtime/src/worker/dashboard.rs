//! Serving the dashboard beside the worker (`--web`, [`Worker::web`](super::Worker::web)),
//! behind basic auth when `JOBS_WEB_PASSWORD` is set (user `JOBS_WEB_USER`, default `admin`);
//! without one, answering host names beyond `localhost` and IP addresses only when
//! `JOBS_WEB_HOSTS` lists them (comma-separated, as `Dashboard::allowed_hosts` takes them).
//! Health probes (`health.rs`) are answered beside it, outside the password and the host check.
//! Without the `web` feature, asking for it is a start-up error that says so.

use std::net::SocketAddr;

#[cfg(feature = "web")]
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::config::WorkerConfig;
use super::health::Probes;
use crate::client::Client;
use crate::error::Error;

/// The dashboard's server, its address already bound.
#[derive(Debug)]
pub(crate) struct DashboardServer {
    /// The bound address.
    #[cfg(feature = "web")]
    listener: TcpListener,
    /// What it serves.
    #[cfg(feature = "web")]
    dashboard: crate::web::Dashboard,
    /// Where, for the log.
    #[cfg(feature = "web")]
    address: SocketAddr,
    /// The health probes, answered beside the dashboard.
    #[cfg(feature = "web")]
    probes: Probes,
}

impl DashboardServer {
    /// Binds `address` for the dashboard of `client`'s Redis, trimming the dead set as
    /// `config` says, with `probes` answered beside it and `metrics` (this process's runs) on its
    /// Prometheus endpoint. Bound first, so a taken port stops the worker at start, holding nothing,
    /// with an error that says so.
    #[cfg(feature = "web")]
    pub(crate) async fn bind(
        client: &Client,
        config: &WorkerConfig,
        address: SocketAddr,
        probes: Probes,
        metrics: &crate::metrics::ExecutionMetrics,
    ) -> Result<Self, Error> {
        let mut dashboard = crate::web::Dashboard::new(client)
            .dead_limits(config.dead_limits())
            .process_metrics(metrics);
        if let Ok(password) = std::env::var("JOBS_WEB_PASSWORD")
            && !password.is_empty()
        {
            let user = std::env::var("JOBS_WEB_USER").unwrap_or_else(|_| "admin".to_owned());
            dashboard = dashboard.basic_auth(user, password);
        }
        if let Ok(hosts) = std::env::var("JOBS_WEB_HOSTS") {
            dashboard = dashboard.allowed_hosts(host_list(&hosts));
        }
        let listener = TcpListener::bind(address)
            .await
            .map_err(|error| Error::Config {
                origin: "--web".to_owned(),
                reason: format!(
                    "cannot serve the dashboard at {address} ({error}); choose another address"
                ),
            })?;
        Ok(Self {
            listener,
            dashboard,
            address,
            probes,
        })
    }

    /// Without the `web` feature there is no dashboard to serve.
    #[cfg(not(feature = "web"))]
    pub(crate) async fn bind(
        _client: &Client,
        _config: &WorkerConfig,
        address: SocketAddr,
        _probes: Probes,
        _metrics: &crate::metrics::ExecutionMetrics,
    ) -> Result<Self, Error> {
        Err(Error::Config {
            origin: "--web".to_owned(),
            reason: format!(
                "cannot serve the dashboard at {address}: this build has no `web` feature; \
                 enable it (it is on by default) or drop --web"
            ),
        })
    }

    /// Serves until `shutdown` (the stop phase), then lets open requests finish; the launcher
    /// does not wait for it.
    #[cfg(feature = "web")]
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let Self {
            listener,
            dashboard,
            address,
            probes,
        } = self;
        let beside = super::health::router(probes);
        let served =
            crate::web::serve_beside(listener, dashboard, beside, shutdown.cancelled_owned()).await;
        if let Err(error) = served {
            tracing::error!(%address, %error, "the dashboard stopped");
        }
    }

    /// Never called: without the `web` feature, [`bind`](Self::bind) fails.
    #[cfg(not(feature = "web"))]
    pub(crate) async fn run(self, _shutdown: CancellationToken) {}
}

/// The names of a comma-separated `JOBS_WEB_HOSTS`, blanks and empty items left out.
#[cfg(any(feature = "web", test))]
fn host_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::host_list;

    #[test]
    fn jobs_web_hosts_is_a_comma_separated_list() {
        assert_eq!(
            host_list(" jobs.example.com, .example.org ,,*"),
            ["jobs.example.com", ".example.org", "*"]
        );
        assert!(host_list(" , ").is_empty());
    }
}
