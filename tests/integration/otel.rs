//! OpenTelemetry (feature `otel`): the trace of an axum request that pushes a job continues
//! through the job's run (a child of the push's `publish` span), its retry is a trace of its own
//! linked to the push, and a job pushed as Ruby's instrumentation writes it continues Ruby's
//! trace. Spans go to an in-memory exporter; Redis and the worker are real.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::Request;
use axum::routing::post;
use jobs::{Client, JobContext, JobError, job};
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use redis::AsyncCommands;
use tower::ServiceExt;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

use crate::support::jobs::{CallLog, worker};
use crate::support::{RunningWorker, TestRedis, eventually};

/// Signs a user up; with `fail_first`, its first run fails (a retry then succeeds).
#[job(retry = 1)]
pub async fn traced_signup(#[context] ctx: JobContext, fail_first: bool) -> Result<(), JobError> {
    if fail_first && ctx.retry_count().is_none() {
        return Err(JobError::msg("the mail server is down"));
    }
    Ok(())
}

/// Routes `tracing` spans on this thread to an in-memory exporter, until the guard drops. The
/// tests run on one thread (`#[tokio::test]`), worker tasks included.
fn trace_to_memory() -> (InMemorySpanExporter, tracing::subscriber::DefaultGuard) {
    crate::support::keep_every_callsite_interested();
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("otel-tests")));
    (exporter, tracing::subscriber::set_default(subscriber))
}

fn spans(exporter: &InMemorySpanExporter) -> Vec<SpanData> {
    exporter.get_finished_spans().expect("the exported spans")
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|span| span.name == name).collect()
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|pair| pair.key.as_str() == key)
        .map(|pair| pair.value.to_string())
}

/// The handler: pushes a signup job inside the request's span; answers its jid.
async fn signup(State(client): State<Client>) -> String {
    let span = tracing::info_span!("POST /signup", otel.kind = "server");
    async move {
        let pushed = client
            .perform_async(TracedSignup { fail_first: true })
            .await
            .expect("push the job");
        pushed.jid().to_string()
    }
    .instrument(span)
    .await
}

/// The only job in `queue:default`, as JSON.
async fn queued(redis: &TestRedis) -> serde_json::Value {
    let mut raw = redis.raw().await;
    let jobs: Vec<String> = raw.lrange("queue:default", 0, -1).await.expect("LRANGE");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    serde_json::from_str(&jobs[0]).expect("job JSON")
}

#[tokio::test]
async fn a_job_continues_the_pushing_requests_trace_and_its_retry_links_to_it() {
    let (exporter, _guard) = trace_to_memory();
    let redis = TestRedis::start();
    let app = Router::new()
        .route("/signup", post(signup))
        .with_state(redis.client());
    let request = Request::post("/signup").body(Body::empty()).unwrap();
    let response = app.oneshot(request).await.expect("the handler answers");
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    let jid = String::from_utf8(body.to_vec()).unwrap();

    let exported = spans(&exporter);
    let [handler] = named(&exported, "POST /signup")[..] else {
        panic!("one handler span: {exported:#?}");
    };
    let [publish] = named(&exported, "default publish")[..] else {
        panic!("one publish span: {exported:#?}");
    };
    let trace = handler.span_context.trace_id();
    assert_eq!(publish.span_context.trace_id(), trace);
    assert_eq!(publish.parent_span_id, handler.span_context.span_id());
    assert_eq!(publish.span_kind, SpanKind::Producer);
    assert_eq!(
        attribute(publish, "messaging.message.id"),
        Some(jid.clone())
    );
    // What Ruby's instrumentation writes: the W3C header as a top-level key of the job.
    let job = queued(&redis).await;
    assert_eq!(
        job["traceparent"],
        format!("00-{trace:032x}-{:016x}-01", publish.span_context.span_id()),
        "{job}"
    );
    assert!(
        job.get("tracestate").is_none(),
        "no trace state to carry: {job}"
    );

    let log = CallLog::default();
    let running = RunningWorker::start(worker(&redis, &log));
    let mut raw = redis.raw().await;
    let mut retries: Vec<String> = Vec::new();
    eventually(
        Duration::from_secs(10),
        "the first run failed",
        async || {
            retries = raw.zrange("retry", 0, -1).await.expect("ZRANGE");
            !retries.is_empty()
        },
    )
    .await;
    // Time passes: the retry is due now (the scheduler moves it as it is).
    let _: () = raw.zadd("retry", &retries[0], 0).await.expect("ZADD");
    eventually(Duration::from_secs(10), "the retry ran", async || {
        named(&spans(&exporter), "default process").len() == 2
    })
    .await;
    running.stop(Duration::from_secs(10)).await;

    let exported = spans(&exporter);
    let [first, retry] = named(&exported, "default process")[..] else {
        panic!("two process spans: {exported:#?}");
    };
    // The first run: a child of the publish span, in the request's trace.
    assert_eq!(first.span_context.trace_id(), trace);
    assert_eq!(first.parent_span_id, publish.span_context.span_id());
    assert_eq!(first.span_kind, SpanKind::Consumer);
    assert!(matches!(first.status, Status::Error { .. }), "{first:#?}");
    for (key, value) in [
        ("messaging.system", "sidekiq"),
        ("messaging.operation.type", "process"),
        ("messaging.destination.name", "default"),
        ("messaging.message.id", jid.as_str()),
        ("messaging.sidekiq.job_class", "TracedSignup"),
    ] {
        assert_eq!(attribute(first, key).as_deref(), Some(value), "{key}");
    }
    assert_eq!(attribute(first, "messaging.sidekiq.retry_count"), None);
    // The retry: a trace of its own, linked to the publish span.
    assert_ne!(retry.span_context.trace_id(), trace);
    assert_eq!(retry.parent_span_id, SpanId::INVALID);
    let links: Vec<_> = retry
        .links
        .links
        .iter()
        .map(|link| (link.span_context.trace_id(), link.span_context.span_id()))
        .collect();
    assert_eq!(links, [(trace, publish.span_context.span_id())]);
    assert_eq!(
        attribute(retry, "messaging.sidekiq.retry_count").as_deref(),
        Some("0")
    );
    assert!(!matches!(retry.status, Status::Error { .. }), "{retry:#?}");
}

#[tokio::test]
async fn a_job_pushed_by_ruby_continues_rubys_trace() {
    let (exporter, _guard) = trace_to_memory();
    let redis = TestRedis::start();
    // As Ruby's `opentelemetry-instrumentation-sidekiq` writes a job: the propagation fields
    // are top-level keys (`OpenTelemetry.propagation.inject(job)`).
    let job = serde_json::json!({
        "class": "TracedSignup",
        "args": [false],
        "jid": "2f0f1e6c3b1e4d5a8a9b0c1d",
        "queue": "default",
        "retry": 1,
        "created_at": 1_795_369_595.362_290_6,
        "enqueued_at": 1_795_369_595.362_360_5,
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "tracestate": "congo=t61rcWkgMzE",
    });
    let mut raw = redis.raw().await;
    let _: () = raw.sadd("queues", "default").await.unwrap();
    let _: () = raw.lpush("queue:default", job.to_string()).await.unwrap();

    let log = CallLog::default();
    let running = RunningWorker::start(worker(&redis, &log));
    eventually(Duration::from_secs(10), "the job ran", async || {
        !named(&spans(&exporter), "default process").is_empty()
    })
    .await;
    running.stop(Duration::from_secs(10)).await;

    let exported = spans(&exporter);
    let [process] = named(&exported, "default process")[..] else {
        panic!("one process span: {exported:#?}");
    };
    assert_eq!(
        process.span_context.trace_id(),
        TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap()
    );
    assert_eq!(
        process.parent_span_id,
        SpanId::from_hex("b7ad6b7169203331").unwrap()
    );
    assert!(process.parent_span_is_remote);
    assert_eq!(
        process.span_context.trace_state().header(),
        "congo=t61rcWkgMzE"
    );
}

#[tokio::test]
async fn without_an_opentelemetry_layer_a_push_writes_no_trace_fields() {
    // A subscriber, so the spans exist, but none that makes OpenTelemetry spans of them.
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry());
    let redis = TestRedis::start();
    let span = tracing::info_span!("POST /signup");
    redis
        .client()
        .perform_async(TracedSignup { fail_first: false })
        .instrument(span)
        .await
        .expect("push the job");
    let job = queued(&redis).await;
    assert!(job.get("traceparent").is_none(), "{job}");
    assert!(job.get("tracestate").is_none(), "{job}");
}
