//! A private PostgreSQL cluster for the whole test binary, and a database of its own per test.
//!
//! The first test that asks starts it: `initdb` into a temporary directory, then `pg_ctl start`
//! on a free port of 127.0.0.1 with its socket in that directory and `fsync` off (as the user
//! `postgres` when the tests run as root, which `initdb` refuses). A watcher process, started
//! before `initdb`, waits for the test binary to exit, however it exits (a failed test, a panic,
//! `kill -9`), then stops the server by the PID in its `postmaster.pid` (SIGQUIT, PostgreSQL's
//! immediate shutdown) and removes the directory. A start that `pg_ctl` gave up waiting for
//! (a slow machine) is stopped the same way before the next try, so it cannot hold the data
//! directory nor outlive the tests. With `DATABASE_URL` set, that server is used instead, and each test's
//! database is dropped when the test ends.
//!
//! A missing PostgreSQL fails the test with instructions; nothing skips.
//!
//! This file needs nothing from the rest of `support`, so `tests/todos.rs` includes it alone.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use jobs::outbox::sqlx::{self, Executor, PgPool, postgres::PgPoolOptions};

/// The cluster every test of this binary shares: the URL of its `postgres` database, and
/// whether the tests started it.
struct Cluster {
    admin_url: String,
    private: bool,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// The databases made so far, for unique names.
static MADE: AtomicUsize = AtomicUsize::new(0);

/// A database of one test: empty, with the outbox's table unless the test asked otherwise.
pub struct TestDatabase {
    url: String,
    name: String,
    pool: PgPool,
}

impl TestDatabase {
    /// A new database with the table `jobs_outbox` created (`jobs::outbox::migrate`).
    pub async fn start() -> Self {
        let database = Self::empty().await;
        jobs::outbox::migrate(&database.pool)
            .await
            .expect("create the outbox's table");
        database
    }

    /// A new, empty database.
    pub async fn empty() -> Self {
        let cluster = CLUSTER.get_or_init(Cluster::start);
        let name = format!(
            "jobs_test_{}_{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::SeqCst)
        );
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&cluster.admin_url)
            .await
            .expect("connect to the test cluster");
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("CREATE DATABASE");
        admin.close().await;
        let url = with_database(&cluster.admin_url, &name);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect(&url)
            .await
            .expect("connect to the test database");
        Self { url, name, pool }
    }

    /// Its URL, for a child process (`DATABASE_URL`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A pool of connections to it.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// How many rows wait in `jobs_outbox`.
    pub async fn outbox_rows(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM jobs_outbox")
            .fetch_one(&self.pool)
            .await
            .expect("count the outbox's rows")
    }

    /// The jids waiting in `jobs_outbox`, in id order.
    pub async fn outbox_jids(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT jid FROM jobs_outbox ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .expect("read the outbox's jids")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(cluster) = CLUSTER.get() else {
            return;
        };
        if cluster.private {
            // The whole cluster goes when the test binary exits.
            return;
        }
        // Someone else's server: drop the database, from a thread of its own (a runtime cannot
        // be entered from a test's runtime).
        let admin_url = cluster.admin_url.clone();
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let admin = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&admin_url)
                    .await?;
                admin.execute(statement.as_str()).await.map(drop)
            })
        });
        let _ = dropped.join();
    }
}

impl Cluster {
    /// The server `DATABASE_URL` names, or a private cluster started now.
    fn start() -> Self {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            return Self {
                admin_url: url,
                private: false,
            };
        }
        let dir = std::env::temp_dir().join(format!("jobs-test-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the cluster's directory");
        let as_postgres = is_root();
        if as_postgres {
            run(Command::new("chown").arg("postgres:").arg(&dir), "chown");
        }
        let data = dir.join("data");
        watch(&data, &dir);
        run(
            command(&binary("initdb"), as_postgres)
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
                .args(["--locale=C"]),
            "initdb",
        );
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
                dir.display()
            );
            let started = command(&binary("pg_ctl"), as_postgres)
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("log"))
                .args(["-o", &options, "-w", "-t", "30", "start"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run pg_ctl");
            if started.success() {
                return Self {
                    admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                    private: true,
                };
            }
            last = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            // A server `pg_ctl` stopped waiting for may still be starting: stop it.
            stop_postmaster(&data);
        }
        panic!("PostgreSQL did not start:\n{last}");
    }
}

/// Starts a process, in a session of its own so a Ctrl-C to the tests does not end it, that
/// waits for this test binary to exit, then stops the server whose PID `data`'s
/// `postmaster.pid` names (waiting 5 s for a server still starting to write it) and removes
/// `dir`.
fn watch(data: &Path, dir: &Path) {
    let script = format!(
        "while kill -0 {parent} 2>/dev/null; do sleep 0.2; done; \
         for _ in 1 2 3 4 5 6 7 8 9 10; do [ -e '{data}/postmaster.pid' ] && break; sleep 0.5; done; \
         pid=$(head -n 1 '{data}/postmaster.pid' 2>/dev/null); \
         if [ -n \"$pid\" ]; then \
           kill -QUIT \"$pid\" 2>/dev/null; \
           for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 \"$pid\" 2>/dev/null || break; sleep 0.5; done; \
           kill -KILL \"$pid\" 2>/dev/null; \
         fi; rm -rf '{dir}'",
        parent = std::process::id(),
        data = data.display(),
        dir = dir.display(),
    );
    // `setsid --fork` returns at once, leaving the watcher running in its own session.
    let started = Command::new("setsid")
        .args(["--fork", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("start the cluster's watcher (setsid, sh)");
    assert!(started.success(), "setsid failed: {started}");
}

/// Stops the server whose PID `data`'s `postmaster.pid` names (waiting 5 s for a server still
/// starting to write it): SIGQUIT, then SIGKILL after 5 s. A `postmaster.pid` left by a killed
/// server is stale, and the next server takes it over.
fn stop_postmaster(data: &Path) {
    let mut pid = None;
    for _ in 0..50 {
        pid = postmaster_pid(data);
        if pid.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let Some(pid) = pid else {
        return;
    };
    let signal = |name: &str| {
        Command::new("kill")
            .args([name, &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    signal("-QUIT");
    for _ in 0..50 {
        if !signal("-0") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    signal("-KILL");
}

/// The postmaster's PID, the first line of `postmaster.pid`, if the file is there.
fn postmaster_pid(data: &Path) -> Option<u32> {
    std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()
        .and_then(|text| {
            text.lines()
                .next()
                .and_then(|line| line.trim().parse().ok())
        })
}

/// `program`, run as the user `postgres` when `as_postgres`.
fn command(program: &Path, as_postgres: bool) -> Command {
    if as_postgres {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Runs `command`, failing the test with its output when it fails.
fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|error| {
        panic!(
            "cannot run {what} ({error}); install PostgreSQL with `apt-get install postgresql`, \
             or run `scripts/test`, which does"
        )
    });
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A PostgreSQL program: from Debian's `/usr/lib/postgresql/<newest>/bin`, else from `PATH`.
fn binary(name: &str) -> PathBuf {
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let path = entry.path().join("bin").join(name);
            path.exists().then_some((version, path))
        })
        .max_by_key(|(version, _)| *version);
    newest.map_or_else(|| PathBuf::from(name), |(_, path)| path)
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// Whether this process runs as root.
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let base = match base.rfind('/') {
        Some(slash) if base[..slash].contains("//") && slash > base.find("//").unwrap_or(0) + 1 => {
            &base[..slash]
        }
        _ => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}
