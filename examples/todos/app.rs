//! The todo app's routes: an HTML page, and JSON endpoints whose writes queue
//! `ScoreGeneration`. In PostgreSQL mode (`DATABASE_URL`, feature `postgres`) a write and its
//! push are one `jobs::outbox` transaction: a write that fails queues nothing, and a process
//! dying after the commit loses no job (the worker's relay moves it).
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page: todos, scores, a form |
//! | `GET /todos`, `POST /todos` | list; create from `{"user", "title"}` |
//! | `PATCH /todos/{id}`, `DELETE /todos/{id}` | change from `{"title"?, "done"?}`; delete |
//! | `GET /scores` | `{"date", "by_user"}` as the last `ScoreGeneration` left them |

use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde::Deserialize;

use crate::common::ScoreGeneration;
use crate::common::store::{Change, Changed, Scores, Todo, TodoPatch, TodoStore};

/// What the handlers share: the store, and the client the PostgreSQL mode's transactions push
/// through (the dashboard's).
#[derive(Clone)]
pub(crate) struct App {
    store: TodoStore,
    #[cfg(feature = "postgres")]
    jobs: jobs::Client,
}

/// The app, on `store`, with the jobs dashboard of `jobs` at `/jobs`.
pub(crate) fn router(store: TodoStore, jobs: &jobs::Client) -> Router {
    // The dashboard can delete jobs: behind a password when `JOBS_WEB_PASSWORD` is set (a
    // real app would put it behind its own login instead).
    let dashboard = match std::env::var("JOBS_WEB_PASSWORD") {
        Ok(password) if !password.is_empty() => {
            jobs::web::Dashboard::new(jobs).basic_auth("admin", password)
        }
        _ => jobs::web::Dashboard::new(jobs),
    };
    Router::new()
        .route("/", get(page))
        .route("/todos", get(list).post(create))
        .route("/todos/{id}", patch(update).delete(remove))
        .route("/scores", get(scores))
        .with_state(App {
            store,
            #[cfg(feature = "postgres")]
            jobs: jobs.clone(),
        })
        .nest_service("/jobs", dashboard.router())
}

/// A new todo.
#[derive(Debug, Deserialize)]
pub(crate) struct NewTodo {
    user: String,
    title: String,
}

/// What a handler answers when something failed: a status and a sentence.
pub(crate) struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

impl From<crate::common::store::StoreError> for Failure {
    fn from(error: crate::common::store::StoreError) -> Self {
        Self(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
    }
}

async fn list(State(app): State<App>) -> Result<Json<Vec<Todo>>, Failure> {
    Ok(Json(app.store.todos().await?))
}

async fn create(
    State(app): State<App>,
    Json(new): Json<NewTodo>,
) -> Result<(StatusCode, Json<Todo>), Failure> {
    if new.user.trim().is_empty() || new.title.trim().is_empty() {
        return Err(Failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a todo needs a user and a title".to_owned(),
        ));
    }
    let change = Change::Add {
        user: new.user.trim().to_owned(),
        title: new.title.trim().to_owned(),
    };
    match write(&app, change).await? {
        Changed::Added(todo) => Ok((StatusCode::CREATED, Json(todo))),
        other => Err(unexpected(&other)),
    }
}

async fn update(
    State(app): State<App>,
    Path(id): Path<u64>,
    Json(patch): Json<TodoPatch>,
) -> Result<Json<Todo>, Failure> {
    match write(&app, Change::Update { id, patch }).await? {
        Changed::Updated(Some(todo)) => Ok(Json(todo)),
        Changed::Updated(None) => Err(not_found(id)),
        other => Err(unexpected(&other)),
    }
}

async fn remove(State(app): State<App>, Path(id): Path<u64>) -> Result<StatusCode, Failure> {
    match write(&app, Change::Delete { id }).await? {
        Changed::Deleted(true) => Ok(StatusCode::NO_CONTENT),
        Changed::Deleted(false) => Err(not_found(id)),
        other => Err(unexpected(&other)),
    }
}

async fn scores(State(app): State<App>) -> Result<Json<Scores>, Failure> {
    Ok(Json(app.store.scores().await?))
}

/// Applies `change` and, when it changed the todos, queues today's `ScoreGeneration` so a
/// worker recomputes the scores and the request need not wait. In PostgreSQL both happen in one
/// transaction of the outbox: the job is pushed if and only if the change commits.
async fn write(app: &App, change: Change) -> Result<Changed, Failure> {
    #[cfg(feature = "postgres")]
    if let Some(pool) = app.store.pool() {
        let unavailable =
            |error: jobs::Error| Failure(StatusCode::SERVICE_UNAVAILABLE, error.to_string());
        let mut tx = jobs::outbox::begin_with(pool, &app.jobs)
            .await
            .map_err(unavailable)?;
        let changed = crate::common::postgres::apply(&mut tx, change).await?;
        if changed.changed() {
            tx.perform_async(ScoreGeneration { date: today() })
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        return Ok(changed);
    }
    let changed = app.store.apply(change).await?;
    if changed.changed() {
        queue_scores().await?;
    }
    Ok(changed)
}

/// The todos changed: a worker recomputes today's scores, so the request need not wait.
async fn queue_scores() -> Result<(), Failure> {
    ScoreGeneration::perform_async(today())
        .await
        .map(drop)
        .map_err(|error| {
            Failure(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("saved, but the scores could not be queued for update: {error}"),
            )
        })
}

fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}

fn unexpected(changed: &Changed) -> Failure {
    Failure(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("the store answered {changed:?}"),
    )
}

fn not_found(id: u64) -> Failure {
    Failure(StatusCode::NOT_FOUND, format!("no todo {id}"))
}

async fn page(State(app): State<App>) -> Result<Html<String>, Failure> {
    let todos = app.store.todos().await?;
    let scores = app.store.scores().await?;
    let mut html = String::from(concat!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Todos</title></head><body>\n",
        "<h1>Todos</h1>\n<ul>\n"
    ));
    for todo in &todos {
        let _ = writeln!(
            html,
            "<li><input type=\"checkbox\" data-id=\"{}\"{}> {} <small>({})</small></li>",
            todo.id,
            if todo.done { " checked" } else { "" },
            escape(&todo.title),
            escape(&todo.user),
        );
    }
    html.push_str("</ul>\n<h2>Scores</h2>\n");
    match scores.date {
        Some(date) => {
            let _ = writeln!(html, "<p>Done todos per user, as of {date}:</p>\n<ul>");
            for (user, score) in &scores.by_user {
                let _ = writeln!(html, "<li>{}: {score}</li>", escape(user));
            }
            html.push_str("</ul>\n");
        }
        None => {
            html.push_str("<p>Not computed yet: is `cargo run --example worker` running?</p>\n")
        }
    }
    html.push_str(FORM);
    html.push_str("<p><a href=\"/jobs\">See the jobs dashboard</a></p>\n</body></html>\n");
    Ok(Html(html))
}

/// The form and the little script that talk to the JSON endpoints.
const FORM: &str = r#"<h2>New todo</h2>
<form id="new"><input name="user" placeholder="user"> <input name="title" placeholder="title">
<button>Add</button></form>
<script>
const send = (method, url, body) => fetch(url, {method, headers: {"content-type": "application/json"},
  body: JSON.stringify(body)}).then(() => location.reload());
document.getElementById("new").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  send("POST", "/todos", {user: form.get("user"), title: form.get("title")});
});
for (const box of document.querySelectorAll("input[data-id]")) {
  box.addEventListener("change", () => send("PATCH", "/todos/" + box.dataset.id, {done: box.checked}));
}
</script>
"#;

/// `text` safe to put in HTML.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}
