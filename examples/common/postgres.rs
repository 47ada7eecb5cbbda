//! The todo app's data in PostgreSQL (`DATABASE_URL` set, feature `postgres`): the tables
//! `todos`, `todo_scores` and `todo_scores_date` (one row: the date the scores are for), beside
//! the outbox's `jobs_outbox`.
//!
//! The writes take a connection, so a handler runs them inside a `jobs::outbox` transaction
//! (which dereferences to one) together with its push of `ScoreGeneration`: the todo and the
//! job commit together, or neither does.

use jobs::outbox::sqlx::{self, PgConnection, PgPool, postgres::PgPoolOptions};

use super::store::{Change, Changed, Scores, StoreError, Todo, TodoPatch};

/// The app's tables; safe to create again.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS todos (
    id        BIGSERIAL PRIMARY KEY,
    user_name TEXT NOT NULL,
    title     TEXT NOT NULL,
    done      BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE IF NOT EXISTS todo_scores (
    user_name TEXT PRIMARY KEY,
    score     BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS todo_scores_date (
    computed_for TEXT NOT NULL
);
";

/// The advisory lock the app and the worker take to create the tables, so two starting at once
/// do not both create them ("todos" in ASCII).
const SCHEMA_LOCK: i64 = 0x0074_6f64_6f73;

/// A pool for the database at `url`, connecting on first use.
pub(crate) fn connect(url: &str) -> Result<PgPool, StoreError> {
    PgPoolOptions::new()
        .max_connections(10)
        .connect_lazy(url)
        .map_err(StoreError::from)
}

/// Creates the outbox's table (`jobs::outbox::migrate`) and the app's, unless they exist.
pub(crate) async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    jobs::outbox::migrate(pool).await?;
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SCHEMA_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(SCHEMA).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

type TodoRow = (i64, String, String, bool);

fn todo((id, user, title, done): TodoRow) -> Todo {
    Todo {
        id: u64::try_from(id).unwrap_or_default(),
        user,
        title,
        done,
    }
}

/// Applies `change` on `connection` (inside the caller's transaction).
pub(crate) async fn apply(
    connection: &mut PgConnection,
    change: Change,
) -> Result<Changed, StoreError> {
    Ok(match change {
        Change::Add { user, title } => Changed::Added(add(connection, &user, &title).await?),
        Change::Update { id, patch } => Changed::Updated(update(connection, id, patch).await?),
        Change::Delete { id } => Changed::Deleted(delete(connection, id).await?),
    })
}

/// Every todo, by id.
pub(crate) async fn todos(connection: &mut PgConnection) -> Result<Vec<Todo>, StoreError> {
    let rows: Vec<TodoRow> =
        sqlx::query_as("SELECT id, user_name, title, done FROM todos ORDER BY id")
            .fetch_all(connection)
            .await?;
    Ok(rows.into_iter().map(todo).collect())
}

/// Adds a todo for `user`.
pub(crate) async fn add(
    connection: &mut PgConnection,
    user: &str,
    title: &str,
) -> Result<Todo, StoreError> {
    let row: TodoRow = sqlx::query_as(
        "INSERT INTO todos (user_name, title) VALUES ($1, $2) RETURNING id, user_name, title, done",
    )
    .bind(user)
    .bind(title)
    .fetch_one(connection)
    .await?;
    Ok(todo(row))
}

/// Changes todo `id`; `None` when there is no such todo.
pub(crate) async fn update(
    connection: &mut PgConnection,
    id: u64,
    patch: TodoPatch,
) -> Result<Option<Todo>, StoreError> {
    let row: Option<TodoRow> = sqlx::query_as(
        "UPDATE todos SET title = COALESCE($2, title), done = COALESCE($3, done) WHERE id = $1 \
         RETURNING id, user_name, title, done",
    )
    .bind(i64::try_from(id).unwrap_or(i64::MAX))
    .bind(patch.title)
    .bind(patch.done)
    .fetch_optional(connection)
    .await?;
    Ok(row.map(todo))
}

/// Deletes todo `id`; `false` when there was no such todo.
pub(crate) async fn delete(connection: &mut PgConnection, id: u64) -> Result<bool, StoreError> {
    let deleted = sqlx::query("DELETE FROM todos WHERE id = $1")
        .bind(i64::try_from(id).unwrap_or(i64::MAX))
        .execute(connection)
        .await?;
    Ok(deleted.rows_affected() > 0)
}

/// The scores last saved.
pub(crate) async fn scores(connection: &mut PgConnection) -> Result<Scores, StoreError> {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT user_name, score FROM todo_scores")
        .fetch_all(&mut *connection)
        .await?;
    let date: Option<String> = sqlx::query_scalar("SELECT computed_for FROM todo_scores_date")
        .fetch_optional(connection)
        .await?;
    Ok(Scores {
        date: date.and_then(|date| date.parse().ok()),
        by_user: rows
            .into_iter()
            .map(|(user, score)| (user, u64::try_from(score).unwrap_or_default()))
            .collect(),
    })
}

/// Recomputes the scores for `date` from the todos as they are, and saves them, in one
/// transaction that holds the scores' table: a second job waits, then reads the todos as the
/// first left them, so scores are never saved from older todos.
pub(crate) async fn recompute_scores(
    pool: &PgPool,
    date: chrono::NaiveDate,
) -> Result<Scores, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE todo_scores IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let todos = todos(&mut tx).await?;
    let scores = Scores::compute(date, &todos);
    write_scores(&mut tx, &scores).await?;
    tx.commit().await?;
    Ok(scores)
}

/// Replaces the scores, in one transaction.
pub(crate) async fn save_scores(pool: &PgPool, scores: &Scores) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    write_scores(&mut tx, scores).await?;
    tx.commit().await?;
    Ok(())
}

async fn write_scores(connection: &mut PgConnection, scores: &Scores) -> Result<(), StoreError> {
    // Two statements rather than one `raw_sql`: its future is not `Send` in a job (sqlx 0.8).
    for table in ["todo_scores", "todo_scores_date"] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *connection)
            .await?;
    }
    for (user, score) in &scores.by_user {
        sqlx::query("INSERT INTO todo_scores (user_name, score) VALUES ($1, $2)")
            .bind(user)
            .bind(i64::try_from(*score).unwrap_or(i64::MAX))
            .execute(&mut *connection)
            .await?;
    }
    if let Some(date) = scores.date {
        sqlx::query("INSERT INTO todo_scores_date (computed_for) VALUES ($1)")
            .bind(date.to_string())
            .execute(connection)
            .await?;
    }
    Ok(())
}
