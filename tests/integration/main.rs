//! Integration tests: `#[job]` and the client against a real, private `redis-server` (and Ruby
//! Sidekiq 6.4 for interop). The fixtures are in `support/`: the private Redis, the test jobs,
//! the fault proxy.

// Test modules share helpers with `pub`; nothing here is reachable from outside anyway.
#![allow(unreachable_pub)]
// In tests a panic is the failure report, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Fault tests print the figures they measure (recovery time, duplicates).
#![allow(clippy::print_stdout)]

mod support;

mod active_job;
mod active_job_push;
mod admin_api;
mod api_hostile;
mod batches;
mod batches_browser;
mod batches_web;
mod caps;
mod capsules;
mod class_caps;
mod client_connection;
mod client_default;
mod client_errors;
mod client_middleware;
mod client_timeout;
mod cluster;
mod deploy_compose;
mod deploy_kubernetes;
mod deploy_logs;
mod deploy_systemd;
mod enqueue_bulk;
mod enqueue_format;
mod enqueue_inline;
mod enqueue_options;
mod enqueue_schedule;
mod expiring_jobs;
mod faults;
mod fetch_script;
mod health;
mod hostile_fuzz;
mod interop_ruby;
mod job_logs;
mod lifecycle;
mod limits;
mod metrics_browser;
mod metrics_keys;
mod metrics_web;
#[cfg(feature = "otel")]
mod otel;
#[cfg(feature = "postgres")]
mod outbox;
mod paused_dashboard;
mod paused_queues;
mod payload_decode;
mod periodic;
mod periodic_api;
mod rails_config;
mod registry;
mod retry_hooks;
mod rewrite_exact;
mod sentinel;
mod testing_batches;
mod testing_fake;
mod testing_inline;
mod unique_jobs;
mod web_browser;
mod web_dark_mode;
mod web_hardening;
mod web_http;
mod web_live_poll;
mod web_periodic;
mod worker_config;
mod worker_failures;
mod worker_hostile;
mod worker_interop;
mod worker_middleware;
mod worker_run;
mod worker_scheduler;
mod workflows;
