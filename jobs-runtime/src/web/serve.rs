//! Serving the dashboard on its own address: `cargo run --example dashboard`, or a worker's
//! `--web` flag.

use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;

use super::Dashboard;

/// Where the dashboard listens unless told otherwise: loopback only.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:7433";

/// Serves `dashboard` at `address` until `shutdown` completes. An address that is not on
/// loopback, with no password set, is logged as a warning: anyone who can reach it can delete
/// jobs, so put a login or [`Dashboard::basic_auth`] in front of it. Without a password it
/// answers only requests sent to an IP address or `localhost` (`http://192.168.1.5:7433`), or
/// to a name listed with [`Dashboard::allowed_hosts`].
pub async fn serve(
    dashboard: Dashboard,
    address: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(address).await?;
    serve_on(listener, dashboard, shutdown).await
}

/// [`serve`] on a listener already bound (so a caller can report a taken port itself).
pub async fn serve_on(
    listener: TcpListener,
    dashboard: Dashboard,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    announce(&listener, &dashboard)?;
    axum::serve(listener, dashboard.router())
        .with_graceful_shutdown(shutdown)
        .await
}

/// [`serve_on`], with `beside` answering the paths it routes ahead of the dashboard, outside
/// its password and host check: a worker's health probes on `--web`.
pub(crate) async fn serve_beside(
    listener: TcpListener,
    dashboard: Dashboard,
    beside: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    announce(&listener, &dashboard)?;
    axum::serve(listener, beside.fallback_service(dashboard.router()))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Logs where the dashboard listens, warning when it listens beyond loopback with no password.
fn announce(listener: &TcpListener, dashboard: &Dashboard) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    if !address.ip().is_loopback() && dashboard.basic_auth.is_none() {
        tracing::warn!(
            %address,
            "the dashboard listens beyond this machine with no password; anyone who can reach it \
             can delete jobs and stop processes (set JOBS_WEB_PASSWORD, or bind 127.0.0.1)"
        );
    }
    tracing::info!(%address, "dashboard listening");
    Ok(())
}
