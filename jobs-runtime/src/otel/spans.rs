//! The spans: a push's `publish` span and the context it writes into the job; a run's `job`
//! span, named and related to that context.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::{Context, global};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::carrier::{Reader, Writer};
use super::w3c::TraceContext;
use super::{Relation, propagation};
use crate::job_error::JobError;
use crate::payload::Payload;

/// Messaging semantic conventions' `messaging.system`: Sidekiq's format, as Ruby's
/// instrumentation names it.
const SYSTEM: &str = "sidekiq";

/// The `<queue> publish` span (kind producer) for pushing `payload`, with its context written
/// into the payload's `traceparent` and `tracestate`. Without an OpenTelemetry layer, or with
/// the span filtered out, no context is active and the payload is left as it was.
pub(crate) fn publish_span(payload: &mut Payload) -> Span {
    let span = tracing::info_span!(
        target: "jobs_runtime::client",
        "publish",
        otel.name = %format_args!("{} publish", payload.queue),
        otel.kind = "producer",
        jid = %payload.jid,
        class = %payload.class,
        queue = %payload.queue,
    );
    if span.is_disabled() {
        return span;
    }
    messaging_attributes(&span, payload, &payload.queue, "send");
    let cx = span.context();
    let mut writer = Writer(&mut payload.extra);
    global::get_text_map_propagator(|global| {
        if has_fields(global) {
            global.inject_context(&cx, &mut writer);
        } else {
            TraceContext.inject_context(&cx, &mut writer);
        }
    });
    span
}

/// The `job` span of a run, as without the feature, also named `<queue> process` and of kind
/// consumer for OpenTelemetry.
pub(crate) fn job_span(payload: &Payload, queue: &str) -> Span {
    tracing::info_span!(
        target: "jobs_runtime::worker::processor",
        "job",
        jid = %payload.jid,
        class = %crate::active_job::job_name(payload),
        queue = %queue,
        tags = tracing::field::Empty,
        otel.name = %format_args!("{queue} process"),
        otel.kind = "consumer",
    )
}

/// Makes the job span continue the trace the payload carries, as the [`Propagation`]
/// (super::Propagation) in force says, and gives it the messaging attributes. Called before the
/// span is first entered.
pub(crate) fn continue_trace(span: &Span, payload: &Payload, queue: &str) {
    if span.is_disabled() {
        return;
    }
    let reader = Reader(&payload.extra);
    let pushed = global::get_text_map_propagator(|global| {
        if has_fields(global) {
            global.extract_with_context(&Context::new(), &reader)
        } else {
            TraceContext.extract_with_context(&Context::new(), &reader)
        }
    });
    let remote = pushed.span().span_context().clone();
    // A span whose parent cannot be set (no OpenTelemetry layer) is left as it is.
    let _ = match propagation().relation(payload.retry_count) {
        Relation::Child if remote.is_valid() => span.set_parent(pushed),
        Relation::Child => Ok(()),
        Relation::Link => {
            span.add_link(remote);
            span.set_parent(Context::new())
        }
        Relation::Root => span.set_parent(Context::new()),
    };
    messaging_attributes(span, payload, queue, "process");
    if let Some(count) = payload.retry_count {
        span.set_attribute("messaging.sidekiq.retry_count", i64::from(count));
    }
}

/// Marks the current (job) span as failed with `error`.
pub(crate) fn failed(error: &JobError) {
    Span::current().set_status(Status::error(error.to_string()));
}

/// The messaging semantic conventions' attributes of a span about `payload`.
fn messaging_attributes(span: &Span, payload: &Payload, queue: &str, operation: &'static str) {
    span.set_attribute("messaging.system", SYSTEM);
    span.set_attribute("messaging.operation.type", operation);
    span.set_attribute("messaging.destination.name", queue.to_owned());
    span.set_attribute("messaging.message.id", payload.jid.as_str().to_owned());
    span.set_attribute("messaging.sidekiq.job_class", payload.class.clone());
}

/// Whether a propagator writes anything: OpenTelemetry's global default, a no-op, does not.
fn has_fields(propagator: &dyn TextMapPropagator) -> bool {
    propagator.fields().next().is_some()
}
