//! The web dashboard: Sidekiq's Web UI, in Rust, over the same Redis data.
//!
//! Mount it in an axum app under any path, with one line:
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let client = jobs_runtime::Client::global()?;
//! let app: axum::Router = axum::Router::new()
//!     // … your routes …
//!     .nest_service("/jobs", jobs_runtime::web::router(&client));
//! # Ok(()) }
//! ```
//!
//! `nest_service` routes both `/jobs` and `/jobs/` to it. `.nest("/jobs", …)` works too, but
//! axum then sends `/jobs/` to your app's fallback, not to the dashboard.
//!
//! or serve it alone with `cargo run --example dashboard`, or from a worker with `--web
//! 127.0.0.1:7433` (see [`serve`]).
//!
//! # Protect it
//!
//! The dashboard can delete and retry jobs and stop processes, so in production put it behind
//! your app's login, or give it a password:
//!
//! ```no_run
//! # fn example(client: jobs_runtime::Client) {
//! let mut dashboard = jobs_runtime::web::Dashboard::new(&client);
//! if let Ok(password) = std::env::var("JOBS_WEB_PASSWORD")
//!     && !password.is_empty()
//! {
//!     dashboard = dashboard.basic_auth("admin", password);
//! }
//! let router = dashboard.router();
//! # }
//! ```
//!
//! Your own check is any axum middleware wrapped around the router (`.layer(…)`), such as one
//! that reads your session and answers 403. What the dashboard itself does:
//! - without a password it answers only requests sent to `localhost` or an IP address, or to
//!   a name listed with [`Dashboard::allowed_hosts`], so no web page can reach it through a
//!   name of its own pointed at your machine (DNS rebinding);
//! - every value from Redis is HTML-escaped (args and error messages are attacker-controlled);
//! - changes are POSTs, refused unless the browser says the request is same-origin
//!   (`Sec-Fetch-Site`) or carries the page's CSRF token (a double-submit cookie); GETs change
//!   nothing. A POST from elsewhere is refused on its headers, before its body is read, and a
//!   form larger than any the pages make is refused (413);
//! - a `Content-Security-Policy` with no inline script or style, `X-Frame-Options: DENY`,
//!   `nosniff`, `Referrer-Policy: same-origin` and `Cache-Control: private, no-store`, on
//!   every answer (sign-in and refusals included);
//! - page sizes, history days, poll intervals and filter lengths are capped;
//! - redirects go to the dashboard's own pages only, and a mount path unfit for links and
//!   cookies (`;`, `//`…) is refused.

mod assets;
mod context;
mod failure;
mod format;
mod layout;
mod pages;
mod prometheus;
mod security;
mod serve;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::api::{DeadLimits, SetKind};
use crate::client::Client;
pub(crate) use serve::serve_beside;
pub use serve::{DEFAULT_ADDRESS, serve, serve_on};

/// The dashboard with its options; [`router`](Self::router) makes the axum router.
#[derive(Debug, Clone)]
pub struct Dashboard {
    client: Client,
    basic_auth: Option<security::BasicAuth>,
    allowed_hosts: security::AllowedHosts,
    dead_limits: DeadLimits,
    process_metrics: Option<crate::metrics::ExecutionMetrics>,
}

/// A dashboard once mounted: what every handler reads.
#[derive(Debug)]
pub(crate) struct Mounted {
    /// The Redis and namespace shown.
    pub(crate) client: Client,
    /// How a kill trims the dead set.
    pub(crate) dead_limits: DeadLimits,
    /// The worker whose own figures `/metrics` exports, if any.
    pub(crate) process_metrics: Option<crate::metrics::ExecutionMetrics>,
}

impl Dashboard {
    /// The dashboard of the Redis `client` uses (its namespace included).
    pub fn new(client: &Client) -> Self {
        Self {
            client: client.clone(),
            basic_auth: None,
            allowed_hosts: security::AllowedHosts::default(),
            dead_limits: DeadLimits::default(),
            process_metrics: None,
        }
    }

    /// Adds this worker's own figures to the Prometheus endpoint (`/metrics`): its runs by
    /// class and queue, their times, how busy it is and its concurrency. A worker's `--web`
    /// does it; give it [`Worker::execution_metrics`](crate::Worker::execution_metrics) when
    /// you serve the dashboard yourself beside a worker.
    pub fn process_metrics(mut self, metrics: &crate::metrics::ExecutionMetrics) -> Self {
        self.process_metrics = Some(metrics.clone());
        self
    }

    /// Trims the dead set by these limits when a job is killed, rather than Sidekiq's defaults
    /// (10,000 jobs, 180 days): give it your workers' `dead_max_jobs` and `dead_timeout`.
    pub fn dead_limits(mut self, limits: DeadLimits) -> Self {
        self.dead_limits = limits;
        self
    }

    /// Asks for this user name and password (HTTP basic auth) before every page; compared in
    /// constant time. Use it over HTTPS: basic auth sends the password with each request.
    ///
    /// With a password the dashboard answers requests sent to any host name: the password
    /// protects it, and [`allowed_hosts`](Self::allowed_hosts) is not needed.
    ///
    /// # Panics
    ///
    /// When `password` is empty: a login anyone passes by typing the user name is a mistake,
    /// most often an unset variable read with `unwrap_or_default()`. Leave `basic_auth` out
    /// when there is no password, as `--web` does for an unset or empty `JOBS_WEB_PASSWORD`.
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        let password = password.into();
        assert!(
            !password.is_empty(),
            "Dashboard::basic_auth was given an empty password, which would let in anyone who \
             types the user name; pass a real password, or leave basic_auth out when there is \
             none"
        );
        self.basic_auth = Some(security::BasicAuth::new(&user.into(), &password));
        self
    }

    /// Also answers requests sent to these host names when the dashboard has no password.
    ///
    /// Without [`basic_auth`](Self::basic_auth) the dashboard answers only requests whose
    /// `Host` is `localhost`, a `*.localhost` name or an IP address (any port), and refuses
    /// the rest with a 403 that names the host. Otherwise a web page could have your browser
    /// reach it through a domain of its own pointed at your machine (DNS rebinding), and read
    /// and delete jobs. A request that names no host at all (HTTP/1.0 without `Host`, or your
    /// own test calling the router in-process) is answered: browsers always send one.
    ///
    /// List the names it is really reached by: the public name when a reverse proxy passes it
    /// on (`proxy_set_header Host $host`), or a LAN name. A name matches in any case and with
    /// any port; `.example.com` matches `example.com` and every name under it; `*` matches
    /// every host, which only makes sense when your app's own login guards the dashboard.
    /// Calls add up.
    ///
    /// ```no_run
    /// # fn example(client: jobs_runtime::Client) {
    /// let app: axum::Router = axum::Router::new().nest_service(
    ///     "/jobs",
    ///     jobs_runtime::web::Dashboard::new(&client)
    ///         .allowed_hosts(["jobs.example.com"])
    ///         .router(),
    /// );
    /// # }
    /// ```
    pub fn allowed_hosts(mut self, hosts: impl IntoIterator<Item = impl Into<String>>) -> Self {
        for host in hosts {
            self.allowed_hosts.add(&host.into());
        }
        self
    }

    /// The router, to [`nest_service`](axum::Router::nest_service) under a path of your app
    /// (or [`nest`](axum::Router::nest), which leaves `/path/` to your app) or serve alone.
    pub fn router(self) -> Router {
        let state = Arc::new(Mounted {
            client: self.client.clone(),
            dead_limits: self.dead_limits,
            process_metrics: self.process_metrics.clone(),
        });
        let mut router = Router::new()
            .route("/", get(pages::dashboard::page))
            .route("/stats", get(pages::dashboard::stats))
            .route("/busy", get(pages::busy::page).post(pages::busy::act))
            .route("/queues", get(pages::queues::list))
            .route(
                "/queues/{name}",
                get(pages::queues::show).post(pages::queues::clear),
            )
            .route("/queues/{name}/delete", post(pages::queues::delete_job))
            .route("/queues/{name}/pause", post(pages::queues::pause))
            .route("/queues/{name}/unpause", post(pages::queues::unpause))
            .route("/queues/{name}/cap", post(pages::queues::cap))
            .route("/queues/{name}/uncap", post(pages::queues::uncap))
            .route("/class_caps", post(pages::queues::class_cap))
            .route(
                "/periodic",
                get(pages::periodic::page).post(pages::periodic::act),
            )
            .route("/batches", get(pages::batches::list))
            .route(
                "/batches/{bid}",
                get(pages::batches::show).post(pages::batches::act),
            )
            .route("/workflows", get(pages::workflows::list))
            .route("/workflows/{wid}", get(pages::workflows::show))
            .route("/limits", get(pages::limits::page).post(pages::limits::act))
            .route(pages::metrics::PATH, get(pages::metrics::overview))
            .route("/metrics/classes/{name}", get(pages::metrics::class))
            .route("/metrics", get(prometheus::serve))
            .route("/assets/{file}", get(assets::serve));
        for kind in [SetKind::Retry, SetKind::Scheduled, SetKind::Dead] {
            router = pages::sets::routes(router, kind);
        }
        self.protect(router.with_state(state))
    }

    /// Only the Prometheus endpoint, `GET /metrics` (what [`router`](Self::router) serves at
    /// `/metrics` too), behind the same password or host check: to serve it on an address or
    /// path of its own. With no password, a scraper must use an IP address or `localhost`, or a
    /// name listed with [`allowed_hosts`](Self::allowed_hosts). `docs/metrics.md` lists the
    /// metrics.
    pub fn prometheus_router(self) -> Router {
        let state = Arc::new(Mounted {
            client: self.client.clone(),
            dead_limits: self.dead_limits,
            process_metrics: self.process_metrics.clone(),
        });
        let router = Router::new()
            .route("/metrics", get(prometheus::serve))
            .with_state(state);
        self.protect(router)
    }

    /// `router` behind the password or the host check, with the security headers.
    fn protect(self, router: Router) -> Router {
        // Outermost last: the security headers go on every answer, refusals included.
        let router = match self.basic_auth {
            Some(auth) => router.layer(axum::middleware::from_fn(move |request, next| {
                security::require_basic_auth(auth.clone(), request, next)
            })),
            None => {
                let hosts = Arc::new(self.allowed_hosts);
                router.layer(axum::middleware::from_fn(move |request, next| {
                    security::require_allowed_host(Arc::clone(&hosts), request, next)
                }))
            }
        };
        router.layer(axum::middleware::from_fn(security::headers))
    }
}

/// The dashboard of `client`'s Redis, with no options: `.nest_service("/jobs", router(&client))`.
pub fn router(client: &Client) -> Router {
    Dashboard::new(client).router()
}
