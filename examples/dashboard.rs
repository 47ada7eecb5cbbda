//! The jobs dashboard on its own, for the Redis at `REDIS_URL`:
//!
//! ```text
//! cargo run --example dashboard             # http://127.0.0.1:7433
//! JOBS_WEB_ADDR=0.0.0.0:7433 JOBS_WEB_PASSWORD=secret cargo run --example dashboard
//! ```
//!
//! It listens on 127.0.0.1 unless `JOBS_WEB_ADDR` says otherwise; `JOBS_WEB_PASSWORD` puts it
//! behind basic auth (user `admin`, or `JOBS_WEB_USER`). An empty `JOBS_WEB_PASSWORD` is no
//! password, as with a worker's `--web`. Without one it answers only requests sent to
//! `localhost` or an IP address (`http://192.168.1.5:7433`), not to other host names.

use jobs::web::{DEFAULT_ADDRESS, Dashboard};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let client = jobs::Client::global()?;
    let mut dashboard = Dashboard::new(&client);
    if let Ok(password) = std::env::var("JOBS_WEB_PASSWORD")
        && !password.is_empty()
    {
        let user = std::env::var("JOBS_WEB_USER").unwrap_or_else(|_| "admin".to_owned());
        dashboard = dashboard.basic_auth(user, password);
    }
    let address = std::env::var("JOBS_WEB_ADDR").unwrap_or_else(|_| DEFAULT_ADDRESS.to_owned());
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    jobs::web::serve(dashboard, address.parse()?, ctrl_c).await?;
    Ok(())
}
