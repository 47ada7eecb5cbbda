//! `deploy/jobs-worker.service` and the worker's side of systemd's notify protocol: a real
//! worker process, given `NOTIFY_SOCKET` (a datagram socket this test binds, as systemd does)
//! and `WATCHDOG_USEC`, must send READY=1, WATCHDOG=1 pings and STOPPING=1.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{ChildWorker, TestRedis, free_port, ledger_path};

const UNIT: &str = include_str!("../../deploy/jobs-worker.service");

/// The unit's `[Service]` value for `key` (the last one, as systemd reads it).
fn setting(key: &str) -> Option<&'static str> {
    UNIT.lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(name, _)| name.trim() == key)
        .map(|(_, value)| value.trim())
        .next_back()
}

/// Reads notify messages until `wanted` holds of all seen so far, or `limit` passes.
fn read_until(
    socket: &UnixDatagram,
    seen: &mut Vec<String>,
    limit: Duration,
    wanted: impl Fn(&[String]) -> bool,
) -> bool {
    let deadline = Instant::now() + limit;
    let mut buffer = [0u8; 4096];
    while !wanted(seen) {
        if Instant::now() >= deadline {
            return false;
        }
        if let Ok(length) = socket.recv(&mut buffer) {
            let message = String::from_utf8_lossy(&buffer[..length]);
            seen.extend(message.lines().map(str::to_owned));
        }
    }
    true
}

fn count(seen: &[String], line: &str) -> usize {
    seen.iter().filter(|seen| *seen == line).count()
}

#[tokio::test]
async fn the_worker_sends_ready_watchdog_pings_and_stopping() {
    let redis = TestRedis::start();
    let path = std::env::temp_dir().join(format!(
        "jobs-notify-{}-{}.sock",
        std::process::id(),
        free_port()
    ));
    let _ = std::fs::remove_file(&path);
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("a read timeout");
    let socket_path = path.to_str().expect("a UTF-8 path");
    let mut worker = ChildWorker::spawn(
        &redis.url(),
        &ledger_path("notify"),
        &[("NOTIFY_SOCKET", socket_path), ("WATCHDOG_USEC", "400000")],
    );

    let mut seen = Vec::new();
    let ready = read_until(&socket, &mut seen, Duration::from_secs(20), |seen| {
        count(seen, "READY=1") == 1 && count(seen, "WATCHDOG=1") >= 3
    });
    assert!(
        ready,
        "no READY=1 and three WATCHDOG=1 within 20 s; got {seen:?}\n{}",
        worker.log()
    );
    assert!(!seen.iter().any(|line| line == "STOPPING=1"), "{seen:?}");

    worker.terminate_within(Duration::from_secs(15));
    let stopping = read_until(&socket, &mut seen, Duration::from_secs(2), |seen| {
        count(seen, "STOPPING=1") == 1
    });
    let _ = std::fs::remove_file(&path);
    assert!(stopping, "no STOPPING=1 after SIGTERM; got {seen:?}");
    let ready_at = seen.iter().position(|line| line == "READY=1");
    let stopping_at = seen.iter().position(|line| line == "STOPPING=1");
    assert!(ready_at < stopping_at, "{seen:?}");
}

#[test]
fn the_unit_is_a_notify_service_with_a_watchdog_and_a_stop_timeout_above_the_workers() {
    assert_eq!(setting("Type"), Some("notify"));
    assert_eq!(setting("KillMode"), Some("mixed"));
    assert_eq!(setting("KillSignal"), Some("SIGTERM"));
    assert_eq!(setting("Restart"), Some("always"));
    let seconds = |key: &str| -> u64 {
        setting(key)
            .unwrap_or_else(|| panic!("{key} is not set"))
            .parse()
            .unwrap_or_else(|_| panic!("{key} is not a number of seconds"))
    };
    assert!(seconds("WatchdogSec") >= 10);
    // The worker waits 25 s for running jobs by default, then hands the rest back.
    assert!(
        seconds("TimeoutStopSec") >= 25 + 20,
        "TimeoutStopSec too close to the worker's 25 s"
    );
}

/// `systemd-analyze verify` (from Debian's `systemd`, which `scripts/setup` installs) checks
/// every directive; the unit's `ExecStart` names a binary installed at deploy time, so the copy
/// checked here runs `true` instead.
#[test]
fn systemd_analyze_accepts_the_unit() {
    assert!(
        Command::new("systemd-analyze")
            .arg("--version")
            .output()
            .is_ok(),
        "systemd-analyze is missing: run scripts/setup (it installs systemd)"
    );
    let dir =
        std::env::temp_dir().join(format!("jobs-unit-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let unit = dir.join("jobs-worker.service");
    let true_binary = ["/usr/bin/true", "/bin/true"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .expect("a `true` binary");
    let text = UNIT.replace(
        "ExecStart=/usr/local/bin/jobs-worker",
        &format!("ExecStart={true_binary}"),
    );
    assert_ne!(text, UNIT, "the unit's ExecStart changed; update this test");
    std::fs::write(&unit, text).expect("write the unit");
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("run systemd-analyze");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}
