//! Processing one job taken from a queue: decode it, run it ([`execute`]), log the outcome as
//! Sidekiq's job logger does, count it, and settle a failure by Sidekiq's retry rules. A
//! success's acknowledgement is left to the caller, which batches them (`ack.rs`).

use std::time::{Duration, Instant};

use tracing::Instrument;

use super::ack::Marks;
use super::execute::execute;
use super::hooks::Exhausted;
use super::logging::{Tags, logs_progress};
use super::overrated;
use super::retry::{Decision, describe_delay};
use super::settle::Outcome;
use super::shared::Shared;
use super::unit::{Fetched, RECOVERIES, UNSEEN_RECOVERIES};
use crate::job_error::JobError;
use crate::payload::Payload;
use crate::periodic::{Ending, record_ending};
use crate::raw_job::RawJob;
use crate::timestamp::Timestamp;
use crate::unique::{Held, Release, UniqueUntil};

/// How a job run ended, for its task.
pub(crate) enum Processed {
    /// It succeeded, or expired before it started (and was not run): the caller queues its
    /// acknowledgement (batched, see `ack.rs`), with the release of the unique lock it still
    /// holds, if any, how it ended, and what else its acknowledgement must do.
    Succeeded(Fetched, Option<Release>, Ending, Marks),
    /// It failed or was not a job, and is already settled (retried, buried, dropped).
    Settled,
    /// It did not start: its class's cap was full and it was parked in the class's waiting
    /// list (or it had left the working list meanwhile), so there is nothing to settle.
    Parked,
}

/// Runs a job taken from a queue and settles it, except for the acknowledgement of a success,
/// which it leaves to the caller. Never fails: every outcome, including JSON that is not a job,
/// ends with the job acknowledged, retried, buried or left for recovery.
pub(crate) async fn process(shared: &Shared, fetched: Fetched) -> Processed {
    let parsed = std::str::from_utf8(&fetched.json)
        .map_err(|error| format!("it is not UTF-8 text: {error}"))
        .and_then(|json| Payload::from_json(json).map_err(|error| error.to_string()));
    let payload = match parsed {
        Ok(payload) => payload,
        Err(error) => {
            let reason = format!(
                "the entry taken from queue `{}` is not a job ({error}); it was moved to the \
                 dead set as it was",
                fetched.queue
            );
            tracing::error!(queue = %fetched.queue, %reason, "invalid job JSON");
            shared.counters.record(true);
            // Boxed, as the failure path below: rare paths stay out of every job's future.
            Box::pin(shared.settler.bury_invalid(&fetched, &reason)).await;
            return Processed::Settled;
        }
    };
    #[cfg(not(feature = "otel"))]
    let span = tracing::info_span!(
        "job",
        jid = %payload.jid,
        // An ActiveJob job under its own class, as Sidekiq's job logger names it.
        class = %crate::active_job::job_name(&payload),
        queue = %fetched.queue,
        tags = tracing::field::Empty,
    );
    #[cfg(feature = "otel")]
    let span = crate::otel::job_span(&payload, &fetched.queue);
    #[cfg(feature = "otel")]
    crate::otel::continue_trace(&span, &payload, &fetched.queue);
    if let Some(tags) = payload.tags.as_deref().filter(|tags| !tags.is_empty()) {
        span.record("tags", tracing::field::display(Tags(tags)));
    }
    run_and_settle(shared, fetched, payload)
        .instrument(span)
        .await
}

/// Runs a decoded job, logs and counts its outcome, and settles it if it failed. A job past its
/// `expires_in` that never started is dropped instead.
async fn run_and_settle(shared: &Shared, fetched: Fetched, payload: Payload) -> Processed {
    let marks = Marks::of(&payload);
    let held = Held::of_payload(&payload);
    if crate::expiry::has_expired(&payload, Timestamp::now) {
        tracing::warn!(
            expires_in = %payload.extra.get(crate::expiry::EXPIRES_IN).unwrap_or(&serde_json::Value::Null),
            "expired: it did not start within its expires_in; dropped, not run"
        );
        shared.counters.record_expired();
        let release = held.map(|held| held.released_by(payload.jid.as_str()));
        return Processed::Succeeded(fetched, release, Ending::Expired, marks);
    }
    // A capped class's job takes its class lease or is parked (`crate::cap::class`): one round
    // trip here and one for the release below, for such a job only; a job of an uncapped class
    // pays one in-memory check.
    let class = crate::active_job::job_name(&payload);
    let class_lease = if shared.class_caps.is_capped(class) {
        match Box::pin(take_class_slot(shared, &fetched, class)).await {
            Some(lease) => lease,
            None => return Processed::Parked,
        }
    } else {
        None
    };
    let release = match held {
        Some(held) if held.until == UniqueUntil::Start => {
            // With the next acknowledgements: the job does not wait for it.
            let release = held.released_by(payload.jid.as_str());
            shared.acker.release(release).await;
            None
        }
        held => held.map(|held| held.released_by(payload.jid.as_str())),
    };
    let progress = logs_progress(&payload);
    if progress {
        tracing::info!("start");
    }
    let started = Instant::now();
    let result = execute(
        &shared.registry,
        &shared.state,
        &shared.middleware,
        &payload,
        Some(&shared.client),
    )
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    // Its body ended, whatever the outcome: the class's slot goes to a parked job at once.
    if let Some(lease) = &class_lease {
        Box::pin(crate::cap::class::release(
            &shared.client,
            &shared.leases,
            &fetched.json,
            lease,
        ))
        .await;
    }
    // Over a limiter's limit, with reschedules left: a run, not a failure.
    let over = result
        .as_ref()
        .err()
        .and_then(|error| overrated::plan(&payload, error));
    let failed = result.is_err() && over.is_none();
    shared.counters.record(failed);
    if shared
        .registry
        .get(crate::active_job::job_name(&payload))
        .is_some()
    {
        // As Sidekiq: a class the worker cannot run is not a class's run.
        let queue = &fetched.queue;
        shared
            .metrics
            .record(&payload, queue, Duration::from_secs_f64(elapsed), failed);
    }
    match result {
        Ok(()) => {
            if progress {
                tracing::info!(elapsed = format_args!("{elapsed:.3}"), "done");
            }
            Processed::Succeeded(fetched, release, Ending::Succeeded, marks)
        }
        Err(_) if let Some(plan) = over => {
            Box::pin(overrated::reschedule(shared, &fetched, plan)).await;
            Processed::Settled
        }
        Err(error) => {
            #[cfg(feature = "otel")]
            crate::otel::failed(&error);
            tracing::warn!(
                elapsed = format_args!("{elapsed:.3}"),
                error_class = error.class(),
                error = %error,
                "fail"
            );
            shared.hooks.failed(&error, &payload);
            Box::pin(fail(shared, &fetched, payload, error, release.as_ref())).await;
            Processed::Settled
        }
    }
}

/// Lets a job of capped class `class` start (`Some`, with its class lease, or none when the
/// class has no cap any more), or parks it (`None`: its task ends here, the job waiting in the
/// class's waiting list; or it left the working list meanwhile).
async fn take_class_slot(
    shared: &Shared,
    fetched: &Fetched,
    class: &str,
) -> Option<Option<crate::cap::Lease>> {
    use crate::cap::class::{Starting, Taken, take};
    let starting = Starting {
        class,
        json: &fetched.json,
        working: &shared.working,
        identity: &shared.identity,
        queue_lease: fetched.lease.as_ref(),
    };
    match take(&shared.client, &shared.leases, &starting).await {
        Taken::Run(lease) => Some(lease),
        Taken::Parked => {
            tracing::debug!("parked: its class's cap is full; back in its queue when a slot frees");
            None
        }
        Taken::Gone => {
            tracing::info!("no longer in this process's working list; not run");
            None
        }
    }
}

/// Settles a failed job by Sidekiq's rules (`retry.rs`): into the retry set (its unique lock
/// still held), into the dead set once its retries run out, or dropped (either releasing the
/// lock); the hooks hear of a death. What goes to a set is the job as it was taken with the
/// failure's fields set: every other field keeps its exact text.
async fn fail(
    shared: &Shared,
    fetched: &Fetched,
    mut payload: Payload,
    error: JobError,
    release: Option<&Release>,
) {
    let settler = &shared.settler;
    let message = error.to_string();
    let dropped = (error.class(), message.as_str());
    // `payload` was read from this very text, so it is a JSON object.
    let mut stored = match RawJob::parse(&fetched.json) {
        Ok(stored) => stored,
        Err(parse) => return settler.bury_invalid(fetched, &parse.to_string()).await,
    };
    // It ran to the end, so it did not kill its process: its recovery counts start over.
    for count in [RECOVERIES, UNSEEN_RECOVERIES] {
        payload.extra.remove(count);
        stored.remove(count);
    }
    let now = Timestamp::now();
    // An ActiveJob job's hooks are its wrapped class's.
    let registration = shared.registry.get(crate::active_job::job_name(&payload));
    let decision = shared.policy.on_failure_with(
        &mut payload,
        &mut stored,
        &error,
        |count, error| registration.and_then(|job| job.retry_in(count, error)),
        now,
        &mut rand::rng(),
    );
    match decision {
        Decision::Retry { at } => {
            tracing::info!(
                retry_count = payload.retry_count,
                next_attempt = %describe_delay(at, now),
                "retrying"
            );
            let json = stored.to_json();
            settler
                .settle(fetched, Outcome::Retry { json: &json, at })
                .await;
            record_failure(shared, fetched, Ending::Retrying).await;
        }
        Decision::Exhausted { killed } => {
            // The class's own hook first, as Sidekiq's `sidekiq_retries_exhausted`; then the
            // worker's.
            let by_class = registration.and_then(|job| {
                crate::panic::catch_panic_now(|| job.retries_exhausted(&payload, &error))
                    .inspect_err(|panic| {
                        tracing::error!(error = %panic, "the job's retries_exhausted panicked");
                    })
                    .ok()
            });
            let by_worker = shared.hooks.exhausted(&payload, &error);
            let discard = by_class == Some(Exhausted::Discard)
                || by_worker == Exhausted::Discard
                || payload.dead == Some(false);
            if discard {
                tracing::warn!(killed, "retries exhausted; discarded");
                settler.acknowledge(fetched, release, dropped).await;
                record_failure(shared, fetched, Ending::Dropped).await;
            } else {
                tracing::warn!(killed, "retries exhausted; moved to the dead set");
                let json = stored.to_json();
                let outcome = Outcome::Dead {
                    json: &json,
                    release,
                };
                settler.settle(fetched, outcome).await;
                record_failure(shared, fetched, Ending::Dead).await;
            }
            shared.hooks.died(&payload, &error);
        }
        Decision::Discard => {
            tracing::warn!("not retried (retry: false or discarded); dropped");
            settler.acknowledge(fetched, release, dropped).await;
            record_failure(shared, fetched, Ending::Dropped).await;
            shared.hooks.died(&payload, &error);
        }
    }
}

/// Records how a failed periodic job ended, for its entry's page: one command, on the failure
/// path of periodic jobs only (a success rides on the acknowledgement's round trip). A failure
/// to write it is logged and changes nothing else.
async fn record_failure(shared: &Shared, fetched: &Fetched, ending: Ending) {
    let mut pipeline = redis::pipe();
    if record_ending(&mut pipeline, shared.keys(), &fetched.json, ending)
        && let Err(error) = shared.redis().query::<()>(&pipeline).await
    {
        tracing::warn!(%error, "cannot record how a periodic job ended");
    }
}
