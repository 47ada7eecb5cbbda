//! Compile-time checks of which public types may cross threads: handles and values users keep
//! in shared state, move into `tokio::spawn` or box as errors are `Send + Sync + 'static`; the
//! futures a worker or an axum handler awaits are `Send`; the testing guards are neither `Send`
//! nor `Sync`, on purpose (each is dropped on the thread that made it).
//!
//! A change that breaks one of these fails the build of this binary, as tokio's
//! `tests/async_send_sync.rs` does. Nothing connects to Redis and no future is polled; the
//! tests only name the checks in the output.

use std::future::Future;

use jobs::api::{
    DayStats, DeadLimits, DeadSet, JobRecord, JobSet, Order, Page, Process, ProcessSet, Queue,
    RedisInfo, RetrySet, ScheduledSet, SetKind, SortedEntry, Stats, Work, WorkSet,
};
use jobs::testing::{EnqueuedJob, Fake, Inline};
use jobs::worker::WorkerConfig;
use jobs::{
    Client, ClientBuilder, Error, Jid, JobContext, JobError, JobOptions, JobState, Payload,
    Registration, Registry, Timestamp, Worker,
};

/// Compiles only when `T` may be moved to and shared between threads, and borrows nothing.
fn send_sync_static<T: Send + Sync + 'static>() {}

/// Compiles only when `T` may be moved to another thread and borrows nothing.
fn send_static<T: Send + 'static>() {}

/// Compiles only when `value` may be moved to another thread, as a task's future must be.
fn assert_send<T: Send>(_: &T) {}

/// Compiles only when `value` may be handed to `tokio::spawn`: `Send` and borrowing nothing.
fn assert_spawnable<T: Future + Send + 'static>(_: &T) {}

/// Compiles only when `E` can go into a `Box<dyn Error + Send + Sync>` (or an `anyhow::Error`).
fn boxable_error<E: std::error::Error + Send + Sync + 'static>() {}

/// Implemented twice for every `Send` type, once for any other: `<T as AmbiguousIfSend<_>>`
/// then resolves only when `T` is not `Send` (the "ambiguous impl" trick of the
/// `static_assertions` crate, written out here). Should `T` become `Send`, the build fails at
/// the check with "type annotations needed" (E0283).
trait AmbiguousIfSend<A> {
    /// Names the check.
    fn not_send() {}
}
impl<T: ?Sized> AmbiguousIfSend<()> for T {}
impl<T: ?Sized + Send> AmbiguousIfSend<u8> for T {}

/// [`AmbiguousIfSend`] for `Sync`.
trait AmbiguousIfSync<A> {
    /// Names the check.
    fn not_sync() {}
}
impl<T: ?Sized> AmbiguousIfSync<()> for T {}
impl<T: ?Sized + Sync> AmbiguousIfSync<u8> for T {}

#[test]
fn handles_and_values_are_send_sync_static() {
    send_sync_static::<Client>();
    send_sync_static::<Registry>();
    send_sync_static::<&'static Registration>();
    send_sync_static::<Payload>();
    send_sync_static::<Jid>();
    send_sync_static::<Timestamp>();
    send_sync_static::<JobOptions>();
    send_sync_static::<JobState>();
    send_sync_static::<JobContext>();
    send_sync_static::<WorkerConfig>();
    send_sync_static::<EnqueuedJob>();
}

#[test]
fn builders_can_move_to_another_thread() {
    send_static::<ClientBuilder>();
    send_static::<Worker>();
}

#[test]
fn errors_box_into_send_sync_errors() {
    boxable_error::<Error>();
    // Not a `std::error::Error` itself (as `anyhow::Error` is not), but as movable as one.
    send_sync_static::<JobError>();
}

#[test]
fn the_admin_api_is_send_sync_static() {
    send_sync_static::<Stats>();
    send_sync_static::<DayStats>();
    send_sync_static::<RedisInfo>();
    send_sync_static::<Queue>();
    send_sync_static::<JobRecord>();
    send_sync_static::<JobSet>();
    send_sync_static::<RetrySet>();
    send_sync_static::<ScheduledSet>();
    send_sync_static::<DeadSet>();
    send_sync_static::<SortedEntry>();
    send_sync_static::<SetKind>();
    send_sync_static::<DeadLimits>();
    send_sync_static::<Page>();
    send_sync_static::<Order>();
    send_sync_static::<ProcessSet>();
    send_sync_static::<Process>();
    send_sync_static::<WorkSet>();
    send_sync_static::<Work>();
}

#[cfg(feature = "web")]
#[test]
fn the_dashboard_is_send_sync_static() {
    send_sync_static::<jobs::web::Dashboard>();
}

/// The futures of a worker's three ways to run can be spawned. Never called: it only names
/// their types, so no worker is built.
fn worker_futures(until_stopped: Worker, until_told: Worker, until_idle: Worker) {
    assert_spawnable(&until_stopped.run());
    assert_spawnable(&until_told.run_until(std::future::pending()));
    assert_spawnable(&until_idle.drain());
}

/// The futures of pushes and admin reads can be awaited in a spawned task or an axum handler.
/// Never called: it only names their types.
async fn client_and_api_futures(client: Client, payload: Payload) {
    assert_send(&client.push(payload));
    assert_send(&Stats::fetch(&client));
    let queue = Queue::new(&client, "default");
    assert_send(&queue.size());
    assert_send(&queue.page(Page::first(10)));
    let retries = JobSet::new(&client, SetKind::Retry);
    assert_send(&retries.page(Page::first(10)));
    assert_send(&retries.retry(&[]));
    assert_send(&ProcessSet::new(&client).list());
    assert_send(&WorkSet::new(&client).list());
}

#[test]
fn worker_client_and_api_futures_are_send() {
    let _: fn(Worker, Worker, Worker) = worker_futures;
    let _ = client_and_api_futures;
}

#[test]
fn testing_guards_stay_on_their_thread() {
    <Fake as AmbiguousIfSend<_>>::not_send();
    <Fake as AmbiguousIfSync<_>>::not_sync();
    <Inline as AmbiguousIfSend<_>>::not_send();
    <Inline as AmbiguousIfSync<_>>::not_sync();
}

/// A job for [`outbox_futures`] to push.
#[cfg(feature = "postgres")]
#[jobs::job]
async fn outbox_noop() {}

/// The outbox's futures can be awaited in a spawned task or an axum handler, and a committed
/// transaction's jobs moved from one. Never called: it only names their types.
#[cfg(feature = "postgres")]
async fn outbox_futures<J: jobs::Job>(
    pool: jobs::outbox::sqlx::PgPool,
    mut tx: jobs::outbox::Transaction,
    relay: jobs::outbox::Relay,
    client: Client,
    payload: Payload,
    job: J,
) {
    assert_send(&jobs::outbox::begin(&pool));
    assert_send(&jobs::outbox::migrate(&pool));
    assert_send(&relay.run_once(&client));
    assert_send(&tx.push_payload(payload));
    assert_send(&tx.perform_async(job));
    assert_spawnable(&tx.commit());
}

#[cfg(feature = "postgres")]
#[test]
fn the_outbox_is_send_and_its_futures_too() {
    send_static::<jobs::outbox::Transaction>();
    send_sync_static::<jobs::outbox::Relay>();
    send_sync_static::<jobs::outbox::Committed>();
    let _ = outbox_futures::<OutboxNoop>;
}
