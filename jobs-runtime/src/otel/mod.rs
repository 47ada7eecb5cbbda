//! OpenTelemetry traces (feature `otel`): a push carries the trace context of the span that
//! pushed it, and the worker's span for the job continues that trace.
//!
//! Built on `tracing-opentelemetry`: the spans are `tracing` spans, so they reach your exporter
//! through the `OpenTelemetryLayer` you already install. Nothing here exports anything itself.
//!
//! - **Pushing** opens a `<queue> publish` span (kind producer) around the client middleware and
//!   the encoding, and writes its context into the job as top-level `traceparent` and
//!   `tracestate` keys: what Ruby's `opentelemetry-instrumentation-sidekiq` writes, so Ruby and
//!   Rust continue each other's traces. The global text-map propagator writes them when one is
//!   set (`opentelemetry::global::set_text_map_propagator`); W3C Trace Context otherwise.
//! - **Running** a job: its `job` span is named `<queue> process` (kind consumer) and carries
//!   the messaging attributes. How it relates to the publish span is the process-wide
//!   [`Propagation`], by default a child on the first run and a link on retries.
//!
//! Without an `OpenTelemetryLayer` in the subscriber, no context is active and nothing is
//! written. `docs/tracing.md` has the details and the decisions.

mod carrier;
mod spans;
mod w3c;

use std::sync::atomic::{AtomicU8, Ordering};

pub(crate) use spans::{continue_trace, failed, job_span, publish_span};

/// How a job's `process` span relates to the `publish` span of the push it came from: Ruby's
/// `propagation_style`, with one more choice, the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// The first run is a child of the publish span, in the pushing request's trace; a retry
    /// starts a trace of its own, linked to the publish span, so that a request's trace does not
    /// grow for hours with retries. The default.
    #[default]
    ChildThenLink,
    /// Every run, retries too, is a child of the publish span (Ruby's `:child`).
    Child,
    /// Every run starts a trace of its own, linked to the publish span (Ruby's `:link`, its
    /// default).
    Link,
    /// Every run starts a trace of its own, with no link (Ruby's `:none`).
    None,
}

/// How a run relates to the publish span, decided from the style and the job's retry count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Relation {
    /// The run's span is a child of the publish span.
    Child,
    /// The run's span is a root, linked to the publish span.
    Link,
    /// The run's span is a root.
    Root,
}

impl Propagation {
    /// The relation for a run with `retry_count` (absent on a first run).
    pub(crate) fn relation(self, retry_count: Option<u32>) -> Relation {
        match self {
            Self::ChildThenLink if retry_count.is_none() => Relation::Child,
            Self::ChildThenLink | Self::Link => Relation::Link,
            Self::Child => Relation::Child,
            Self::None => Relation::Root,
        }
    }

    fn index(self) -> u8 {
        match self {
            Self::ChildThenLink => 0,
            Self::Child => 1,
            Self::Link => 2,
            Self::None => 3,
        }
    }

    fn from_index(index: u8) -> Self {
        match index {
            1 => Self::Child,
            2 => Self::Link,
            3 => Self::None,
            _ => Self::ChildThenLink,
        }
    }
}

/// The process-wide [`Propagation`], as an index.
static PROPAGATION: AtomicU8 = AtomicU8::new(0);

/// Sets how the jobs this process runs relate to the trace that pushed them, for every worker
/// in the process, like Ruby's `propagation_style` option. Set it before the worker starts.
pub fn set_propagation(propagation: Propagation) {
    PROPAGATION.store(propagation.index(), Ordering::Relaxed);
}

/// The [`Propagation`] in force.
pub fn propagation() -> Propagation {
    Propagation::from_index(PROPAGATION.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::{Propagation, Relation};

    #[test]
    fn the_default_is_a_child_on_the_first_run_and_a_link_on_retries() {
        let style = Propagation::default();
        assert_eq!(style.relation(None), Relation::Child);
        assert_eq!(style.relation(Some(0)), Relation::Link);
        assert_eq!(Propagation::Child.relation(Some(3)), Relation::Child);
        assert_eq!(Propagation::Link.relation(None), Relation::Link);
        assert_eq!(Propagation::None.relation(None), Relation::Root);
        for style in [
            Propagation::ChildThenLink,
            Propagation::Child,
            Propagation::Link,
            Propagation::None,
        ] {
            assert_eq!(Propagation::from_index(style.index()), style);
        }
    }
}
