//! The todo app example (`examples/todos/`): its handlers queue `ScoreGeneration`, and the
//! job recomputes the scores. The fake and inline tests need no Redis; the Redis tests run the
//! job in a real worker against a private `redis-server`; with the feature `postgres`, the
//! PostgreSQL mode runs against a private PostgreSQL cluster too.
//!
//! A test binary of its own: the example's jobs share wire names (`ScoreGeneration`) with the
//! integration tests' jobs, and one binary must not register a name twice.

// Test helpers are shared with `pub`; nothing here is reachable from outside anyway.
#![allow(unreachable_pub)]
// In tests a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/todos/app.rs"]
mod app;
#[path = "../examples/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "integration/support/redis.rs"]
mod support;
#[cfg(feature = "postgres")]
#[allow(dead_code)]
#[path = "integration/support/postgres.rs"]
mod support_postgres;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use chrono::Utc;
use common::ScoreGeneration;
use common::store::{Scores, Todo, TodoStore};
use jobs::testing;
use serde_json::{Value, json};
use tower::ServiceExt;

/// Sends one request to the app on `store`; returns the status and the body as text.
async fn call(
    store: &TodoStore,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, String) {
    let jobs = jobs::Client::from_env().expect("a client (it connects only when used)");
    call_with(store, &jobs, method, uri, body).await
}

/// [`call`], with the dashboard reading the Redis of `jobs`.
async fn call_with(
    store: &TodoStore,
    jobs: &jobs::Client,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, String) {
    let request = Request::builder().method(method).uri(uri);
    let request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .expect("a request");
    let response = app::router(store.clone(), jobs)
        .oneshot(request)
        .await
        .expect("a response");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a body");
    (status, String::from_utf8(bytes.to_vec()).expect("UTF-8"))
}

async fn create(store: &TodoStore, user: &str, title: &str) -> Todo {
    let (status, body) = call(
        store,
        Method::POST,
        "/todos",
        Some(json!({"user": user, "title": title})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    serde_json::from_str(&body).expect("a todo")
}

/// Marks `todo` done through the app; returns the status.
async fn mark_done(store: &TodoStore, todo: &Todo) -> StatusCode {
    let (status, _) = call(
        store,
        Method::PATCH,
        &format!("/todos/{}", todo.id),
        Some(json!({"done": true})),
    )
    .await;
    status
}

async fn scores(store: &TodoStore) -> Scores {
    let (status, body) = call(store, Method::GET, "/scores", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).expect("scores")
}

#[tokio::test]
async fn each_write_queues_a_score_generation_for_today_instead_of_computing() {
    let store = TodoStore::memory();
    let fake = testing::fake().state(store.clone());
    let today = Utc::now().date_naive();

    let todo = create(&store, "ana", "buy milk").await;
    fake.assert_enqueued_with::<ScoreGeneration>(|job| job.date == today);
    assert_eq!(
        scores(&store).await,
        Scores::default(),
        "the request does not compute scores"
    );

    assert_eq!(mark_done(&store, &todo).await, StatusCode::OK);
    let (status, _) = call(&store, Method::DELETE, "/todos/999", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The second write found today's recomputation still waiting: one job, which sees both
    // writes when it runs (ScoreGeneration is unique until it starts).
    fake.assert_enqueued_count::<ScoreGeneration>(1);
    assert_eq!(fake.refused().len(), 1);

    assert_eq!(fake.drain().await.unwrap(), 1);
    let computed = scores(&store).await;
    assert_eq!(computed.date, Some(today));
    assert_eq!(computed.by_user["ana"], 1);
}

#[tokio::test]
async fn an_invalid_todo_queues_nothing() {
    let store = TodoStore::memory();
    let fake = testing::fake();
    let (status, _) = call(
        &store,
        Method::POST,
        "/todos",
        Some(json!({"user": " ", "title": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    fake.assert_nothing_enqueued();
}

#[tokio::test]
async fn inline_the_scores_follow_every_change_at_once() {
    let store = TodoStore::memory();
    let _inline = testing::inline().state(store.clone());

    let milk = create(&store, "ana", "buy milk").await;
    let bread = create(&store, "ana", "buy bread").await;
    create(&store, "bo", "call mum").await;
    assert_eq!(
        scores(&store).await.by_user,
        [("ana".to_owned(), 0), ("bo".to_owned(), 0)].into()
    );

    for todo in [&milk, &bread] {
        mark_done(&store, todo).await;
    }
    assert_eq!(scores(&store).await.by_user["ana"], 2);

    let (status, _) = call(&store, Method::DELETE, &format!("/todos/{}", milk.id), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(scores(&store).await.by_user["ana"], 1);
}

#[tokio::test]
async fn the_page_lists_todos_and_scores_escaped() {
    let store = TodoStore::memory();
    let _inline = testing::inline().state(store.clone());
    let todo = create(&store, "<b>eve</b>", "<script>alert(1)</script>").await;
    mark_done(&store, &todo).await;

    let (status, html) = call(&store, Method::GET, "/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(
        html.contains("<li>&lt;b&gt;eve&lt;/b&gt;: 1</li>"),
        "{html}"
    );
}

#[tokio::test]
async fn a_worker_computes_the_scores_the_app_then_shows_from_redis() {
    let redis = support::TestRedis::start();
    let app_store = TodoStore::redis(&redis.url()).unwrap();
    let worker_store = TodoStore::redis(&redis.url()).unwrap();
    let todo = app_store.add("ana", "buy milk").await.unwrap();
    app_store.add("bo", "call mum").await.unwrap();
    app_store
        .update(
            todo.id,
            common::store::TodoPatch {
                done: Some(true),
                title: None,
            },
        )
        .await
        .unwrap();
    let today = Utc::now().date_naive();
    redis
        .client()
        .perform_async(ScoreGeneration { date: today })
        .await
        .unwrap();

    let (status, queue) = call_with(
        &app_store,
        &redis.client(),
        Method::GET,
        "/jobs/queues/default",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        queue.contains("ScoreGeneration"),
        "the dashboard shows the queued job"
    );

    jobs::Worker::new()
        .client(&redis.client())
        .state(worker_store)
        .drain()
        .await
        .unwrap();

    let scores = scores(&app_store).await;
    assert_eq!(scores.date, Some(today));
    assert_eq!(
        scores.by_user,
        [("ana".to_owned(), 1), ("bo".to_owned(), 0)].into()
    );
    let keys = redis.keys().await;
    assert!(
        keys.iter().all(|key| !key.starts_with("todos:")
            || [
                "todos:items",
                "todos:next_id",
                "todos:scores",
                "todos:scores:date"
            ]
            .contains(&key.as_str())),
        "{keys:?}"
    );
}

#[tokio::test]
async fn two_changes_to_one_todo_at_once_both_take_effect() {
    let redis = support::TestRedis::start();
    let store = TodoStore::redis(&redis.url()).unwrap();
    for round in 0..20 {
        let todo = store.add("ana", "draft").await.unwrap();
        let title = format!("final {round}");
        let (renamed, finished) = tokio::join!(
            store.update(
                todo.id,
                common::store::TodoPatch {
                    title: Some(title.clone()),
                    done: None,
                },
            ),
            store.update(
                todo.id,
                common::store::TodoPatch {
                    title: None,
                    done: Some(true),
                },
            ),
        );
        assert!(renamed.unwrap().is_some() && finished.unwrap().is_some());
        let stored = store
            .todos()
            .await
            .unwrap()
            .into_iter()
            .find(|stored| stored.id == todo.id)
            .unwrap();
        assert_eq!(
            (stored.title.as_str(), stored.done),
            (title.as_str(), true),
            "round {round}: one change was lost"
        );
    }
}

/// PostgreSQL mode: each write and its `ScoreGeneration` are one outbox transaction, whose job
/// is in Redis when the request returns; a worker computes the scores from the todos there.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_postgres_each_write_commits_with_its_job_and_the_worker_scores() {
    let redis = support::TestRedis::start();
    let db = support_postgres::TestDatabase::empty().await;
    let store = TodoStore::postgres(db.url()).unwrap();
    store.prepare().await.unwrap();
    store.prepare().await.unwrap();
    let jobs = redis.client();
    let today = Utc::now().date_naive();

    let (status, body) = call_with(
        &store,
        &jobs,
        Method::POST,
        "/todos",
        Some(json!({"user": "ana", "title": "buy milk"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let todo: Todo = serde_json::from_str(&body).unwrap();
    let queued = redis.queue("default").await;
    assert_eq!(
        queued.len(),
        1,
        "the job is in Redis when the request returns"
    );
    assert_eq!(queued[0]["class"], "ScoreGeneration");
    assert_eq!(queued[0]["args"], json!([today.to_string()]));
    assert_eq!(db.outbox_rows().await, 0);

    let (status, _) = call_with(
        &store,
        &jobs,
        Method::PATCH,
        &format!("/todos/{}", todo.id),
        Some(json!({"done": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call_with(&store, &jobs, Method::DELETE, "/todos/999", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The change found today's recomputation waiting (ScoreGeneration is unique until it
    // starts): dropped as a duplicate when it reached Redis. The missing todo queued nothing.
    assert_eq!(redis.queue("default").await.len(), 1);
    assert_eq!(db.outbox_rows().await, 0);

    jobs::Worker::new()
        .client(&jobs)
        .state(store.clone())
        .drain()
        .await
        .unwrap();
    let (status, body) = call_with(&store, &jobs, Method::GET, "/scores", None).await;
    assert_eq!(status, StatusCode::OK);
    let scores: Scores = serde_json::from_str(&body).unwrap();
    assert_eq!(scores.date, Some(today));
    assert_eq!(scores.by_user, [("ana".to_owned(), 1)].into());
    let (_, page) = call_with(&store, &jobs, Method::GET, "/", None).await;
    assert!(page.contains("buy milk"), "{page}");
}
