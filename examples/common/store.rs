//! The todo app's data: todos and the scores computed from them, in memory (for tests), in
//! Redis hashes under the app's own `todos:` prefix (so the web app and the worker, two
//! processes, see the same data), or, with `DATABASE_URL` set and the feature `postgres`, in
//! PostgreSQL (`postgres.rs`), where a write and its job commit together.
//!
//! In Redis:
//!
//! | key | type | what |
//! |---|---|---|
//! | `todos:items` | hash | todo id -> the todo as JSON |
//! | `todos:next_id` | string | the last id given out (`INCR`) |
//! | `todos:scores` | hash | user -> score |
//! | `todos:scores:date` | string | the date the scores were computed for |

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::NaiveDate;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

const ITEMS: &str = "todos:items";
const NEXT_ID: &str = "todos:next_id";
const SCORES: &str = "todos:scores";
const SCORES_DATE: &str = "todos:scores:date";

/// One todo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Todo {
    pub(crate) id: u64,
    pub(crate) user: String,
    pub(crate) title: String,
    pub(crate) done: bool,
}

/// A change to a todo; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct TodoPatch {
    pub(crate) title: Option<String>,
    pub(crate) done: Option<bool>,
}

/// Every user's score: how many of their todos are done, as of `date`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Scores {
    pub(crate) date: Option<NaiveDate>,
    pub(crate) by_user: BTreeMap<String, u64>,
}

impl Scores {
    /// The scores `todos` give on `date`: each user's done todos (users with none score 0).
    pub(crate) fn compute(date: NaiveDate, todos: &[Todo]) -> Self {
        let mut by_user = BTreeMap::new();
        for todo in todos {
            *by_user.entry(todo.user.clone()).or_insert(0) += u64::from(todo.done);
        }
        Self {
            date: Some(date),
            by_user,
        }
    }
}

/// A store operation failed: Redis was unreachable, or held something that is not a todo.
#[derive(Debug)]
pub(crate) struct StoreError(String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "todo store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

impl From<redis::RedisError> for StoreError {
    fn from(error: redis::RedisError) -> Self {
        Self(error.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(error: serde_json::Error) -> Self {
        Self(format!("a stored todo is not valid JSON: {error}"))
    }
}

impl From<jobs::Error> for StoreError {
    fn from(error: jobs::Error) -> Self {
        Self(error.to_string())
    }
}

#[cfg(feature = "postgres")]
impl From<jobs::outbox::sqlx::Error> for StoreError {
    fn from(error: jobs::outbox::sqlx::Error) -> Self {
        Self(format!("PostgreSQL: {error}"))
    }
}

/// A write to the todos.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// A new todo for `user`.
    Add { user: String, title: String },
    /// A change to todo `id`.
    Update { id: u64, patch: TodoPatch },
    /// The deletion of todo `id`.
    Delete { id: u64 },
}

/// What a write did.
#[derive(Debug, Clone)]
pub(crate) enum Changed {
    /// The todo added.
    Added(Todo),
    /// The todo as changed; `None` when there was none.
    Updated(Option<Todo>),
    /// Whether there was a todo to delete.
    Deleted(bool),
}

impl Changed {
    /// Whether the todos changed (the todo to change or delete was there).
    pub(crate) fn changed(&self) -> bool {
        match self {
            Self::Added(_) => true,
            Self::Updated(todo) => todo.is_some(),
            Self::Deleted(deleted) => *deleted,
        }
    }
}

/// Where todos and scores live; cheap to clone, shared by handlers and the job.
#[derive(Clone)]
pub(crate) enum TodoStore {
    /// In this process only.
    Memory(Arc<Mutex<Memory>>),
    /// In Redis, connecting on first use.
    Redis(Arc<RedisStore>),
    /// In PostgreSQL, connecting on first use.
    #[cfg(feature = "postgres")]
    Postgres(jobs::outbox::sqlx::PgPool),
}

/// The in-memory data.
#[derive(Default)]
pub(crate) struct Memory {
    todos: BTreeMap<u64, Todo>,
    next_id: u64,
    scores: Scores,
}

/// A Redis connection made on first use, so a worker starts even before Redis is up.
pub(crate) struct RedisStore {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
}

impl TodoStore {
    /// An empty store in memory.
    pub(crate) fn memory() -> Self {
        Self::Memory(Arc::default())
    }

    /// A store in the Redis at `url`.
    pub(crate) fn redis(url: &str) -> Result<Self, StoreError> {
        Ok(Self::Redis(Arc::new(RedisStore {
            client: redis::Client::open(url)?,
            connection: OnceCell::new(),
        })))
    }

    /// A store in the PostgreSQL database at `url`; [`prepare`](Self::prepare) creates its
    /// tables.
    #[cfg(feature = "postgres")]
    pub(crate) fn postgres(url: &str) -> Result<Self, StoreError> {
        Ok(Self::Postgres(super::postgres::connect(url)?))
    }

    /// The PostgreSQL pool, in PostgreSQL mode (for the outbox's transactions and relay).
    #[cfg(feature = "postgres")]
    pub(crate) fn pool(&self) -> Option<&jobs::outbox::sqlx::PgPool> {
        match self {
            Self::Postgres(pool) => Some(pool),
            _ => None,
        }
    }

    /// Creates what the store needs before first use: in PostgreSQL, the outbox's table and the
    /// app's. Nothing elsewhere.
    pub(crate) async fn prepare(&self) -> Result<(), StoreError> {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(pool) => super::postgres::migrate(pool).await,
            _ => Ok(()),
        }
    }

    /// The store the environment names: the PostgreSQL database at `DATABASE_URL` when it is set
    /// (and the example was built with `--features postgres`), else the Redis the jobs client
    /// uses (`REDIS_PROVIDER`, else `REDIS_URL`, default `redis://127.0.0.1:6379/0`).
    pub(crate) fn from_env() -> Result<Self, StoreError> {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            #[cfg(feature = "postgres")]
            return Self::postgres(&url);
            #[cfg(not(feature = "postgres"))]
            tracing::warn!(
                database = %url.split('@').next_back().unwrap_or_default(),
                "DATABASE_URL is set, but this example was built without `--features postgres`: \
                 the todos stay in Redis"
            );
        }
        // As the jobs client reads it: the variable REDIS_PROVIDER names, else REDIS_URL.
        let url = std::env::var("REDIS_PROVIDER")
            .ok()
            .and_then(|name| std::env::var(name).ok())
            .or_else(|| std::env::var("REDIS_URL").ok())
            .unwrap_or_else(|| jobs::DEFAULT_REDIS_URL.to_owned());
        Self::redis(&url)
    }

    /// Every todo, by id.
    pub(crate) async fn todos(&self) -> Result<Vec<Todo>, StoreError> {
        match self {
            Self::Memory(memory) => Ok(lock(memory).todos.values().cloned().collect()),
            Self::Redis(store) => {
                let stored: BTreeMap<u64, String> =
                    store.connection().await?.hgetall(ITEMS).await?;
                stored
                    .values()
                    .map(|json| serde_json::from_str(json).map_err(StoreError::from))
                    .collect()
            }
            #[cfg(feature = "postgres")]
            Self::Postgres(pool) => super::postgres::todos(&mut *pool.acquire().await?).await,
        }
    }

    /// Applies `change`.
    pub(crate) async fn apply(&self, change: Change) -> Result<Changed, StoreError> {
        Ok(match change {
            Change::Add { user, title } => Changed::Added(self.add(&user, &title).await?),
            Change::Update { id, patch } => Changed::Updated(self.update(id, patch).await?),
            Change::Delete { id } => Changed::Deleted(self.delete(id).await?),
        })
    }

    /// Adds a todo for `user`.
    pub(crate) async fn add(&self, user: &str, title: &str) -> Result<Todo, StoreError> {
        let mut todo = Todo {
            id: 0,
            user: user.to_owned(),
            title: title.to_owned(),
            done: false,
        };
        match self {
            Self::Memory(memory) => {
                let mut memory = lock(memory);
                memory.next_id += 1;
                todo.id = memory.next_id;
                memory.todos.insert(todo.id, todo.clone());
            }
            Self::Redis(store) => {
                let mut connection = store.connection().await?;
                todo.id = connection.incr(NEXT_ID, 1).await?;
                let () = connection
                    .hset(ITEMS, todo.id, serde_json::to_string(&todo)?)
                    .await?;
            }
            #[cfg(feature = "postgres")]
            Self::Postgres(pool) => {
                return super::postgres::add(&mut *pool.acquire().await?, user, title).await;
            }
        }
        Ok(todo)
    }

    /// Changes todo `id`; `None` when there is no such todo.
    pub(crate) async fn update(
        &self,
        id: u64,
        patch: TodoPatch,
    ) -> Result<Option<Todo>, StoreError> {
        let apply = |todo: &mut Todo| {
            if let Some(title) = &patch.title {
                todo.title.clone_from(title);
            }
            if let Some(done) = patch.done {
                todo.done = done;
            }
        };
        match self {
            Self::Memory(memory) => Ok(lock(memory).todos.get_mut(&id).map(|todo| {
                apply(todo);
                todo.clone()
            })),
            // Read, change, write back only if no todo changed in between (`WATCH`), else
            // again: two requests changing one todo at once both take effect.
            Self::Redis(store) => loop {
                let mut connection = store.watching(ITEMS).await?;
                let stored: Option<String> = connection.hget(ITEMS, id).await?;
                let Some(json) = stored else {
                    return Ok(None);
                };
                let mut todo: Todo = serde_json::from_str(&json)?;
                apply(&mut todo);
                let mut transaction = redis::pipe();
                transaction
                    .atomic()
                    .hset(ITEMS, id, serde_json::to_string(&todo)?)
                    .ignore();
                if committed(transaction.query_async(&mut connection).await?) {
                    return Ok(Some(todo));
                }
            },
            #[cfg(feature = "postgres")]
            Self::Postgres(pool) => {
                super::postgres::update(&mut *pool.acquire().await?, id, patch).await
            }
        }
    }

    /// Deletes todo `id`; `false` when there was no such todo.
    pub(crate) async fn delete(&self, id: u64) -> Result<bool, StoreError> {
        match self {
            Self::Memory(memory) => Ok(lock(memory).todos.remove(&id).is_some()),
            Self::Redis(store) => {
                let removed: u64 = store.connection().await?.hdel(ITEMS, id).await?;
                Ok(removed > 0)
            }
            #[cfg(feature = "postgres")]
            Self::Postgres(pool) => super::postgres::delete(&mut *pool.acquire().await?, id).await,
        }
    }

    /// The scores last saved.
    pub(crate) async fn scores(&self) -> Result<Scores, StoreError> {
        match self {
            Self::Memory(memory) => Ok(lock(memory).scores.clone()),
            Self::Redis(store) => {
                let mut connection = store.connection().await?;
                let (by_user, date): (BTreeMap<String, u64>, Option<String>) = redis::pipe()
                    .hgetall(SCORES)
                    .get(SCORES_DATE)
                    .query_async(&mut connection)
                    .await?;
                Ok(Scores {
                    date: date.and_then(|date| date.parse().ok()),
                    by_user,
                })
            }
            #[cfg(feature = "postgres")]
            Self::Postgres(pool) => super::postgres::scores(&mut *pool.acquire().await?).await,
        }
    }

    /// Recomputes the scores for `date` from the todos as they are, and saves them. In Redis
    /// the save happens only if no todo changed since they were read (`WATCH`), else it reads
    /// again: two jobs racing never leave scores computed from older todos.
    pub(crate) async fn recompute_scores(&self, date: NaiveDate) -> Result<Scores, StoreError> {
        let store = match self {
            Self::Memory(memory) => {
                let mut memory = lock(memory);
                let todos: Vec<Todo> = memory.todos.values().cloned().collect();
                memory.scores = Scores::compute(date, &todos);
                return Ok(memory.scores.clone());
            }
            Self::Redis(store) => store,
            #[cfg(feature = "postgres")]
            Self::Postgres(pool) => return super::postgres::recompute_scores(pool, date).await,
        };
        loop {
            let mut connection = store.watching(ITEMS).await?;
            let stored: BTreeMap<u64, String> = connection.hgetall(ITEMS).await?;
            let todos = stored
                .values()
                .map(|json| serde_json::from_str(json).map_err(StoreError::from))
                .collect::<Result<Vec<Todo>, _>>()?;
            let scores = Scores::compute(date, &todos);
            let transaction = scores_transaction(&scores);
            if committed(transaction.query_async(&mut connection).await?) {
                return Ok(scores);
            }
        }
    }

    /// Replaces the scores, in one step.
    pub(crate) async fn save_scores(&self, scores: &Scores) -> Result<(), StoreError> {
        match self {
            Self::Memory(memory) => lock(memory).scores = scores.clone(),
            Self::Redis(store) => {
                let mut connection = store.connection().await?;
                let transaction = scores_transaction(scores);
                let () = transaction.query_async(&mut connection).await?;
            }
            #[cfg(feature = "postgres")]
            Self::Postgres(pool) => super::postgres::save_scores(pool, scores).await?,
        }
        Ok(())
    }
}

/// Whether a transaction run after `WATCH` took effect: `EXEC` answers nil, and writes
/// nothing, when a watched key changed.
fn committed(reply: Option<redis::Value>) -> bool {
    reply.is_some_and(|reply| reply != redis::Value::Nil)
}

/// One `MULTI` that replaces the scores with `scores`.
fn scores_transaction(scores: &Scores) -> redis::Pipeline {
    let mut transaction = redis::pipe();
    transaction
        .atomic()
        .del(SCORES)
        .ignore()
        .del(SCORES_DATE)
        .ignore();
    if !scores.by_user.is_empty() {
        let entries: Vec<(&str, u64)> = scores
            .by_user
            .iter()
            .map(|(user, score)| (user.as_str(), *score))
            .collect();
        transaction.hset_multiple(SCORES, &entries).ignore();
    }
    if let Some(date) = scores.date {
        transaction.set(SCORES_DATE, date.to_string()).ignore();
    }
    transaction
}

impl RedisStore {
    /// A connection of its own that has sent `WATCH key`: WATCH belongs to the connection, so
    /// a shared one would mix up two requests' transactions.
    async fn watching(&self, key: &str) -> Result<MultiplexedConnection, StoreError> {
        let mut connection = self.client.get_multiplexed_async_connection().await?;
        redis::cmd("WATCH")
            .arg(key)
            .query_async::<()>(&mut connection)
            .await?;
        Ok(connection)
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let connection = self
            .connection
            .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
            .await?;
        Ok(connection.clone())
    }
}

fn lock(memory: &Mutex<Memory>) -> std::sync::MutexGuard<'_, Memory> {
    memory.lock().unwrap_or_else(PoisonError::into_inner)
}

impl fmt::Debug for TodoStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory(_) => f.write_str("TodoStore::Memory"),
            Self::Redis(_) => f.write_str("TodoStore::Redis"),
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => f.write_str("TodoStore::Postgres"),
        }
    }
}
