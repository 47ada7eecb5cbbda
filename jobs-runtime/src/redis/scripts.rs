//! The Lua scripts, one file each under `scripts/`, embedded at build time. Each is one atomic
//! step of a job's life; the files say what they take and return.

use std::sync::LazyLock;

use redis::Script;

/// Queues -> this process's working list, a batch at a time (`scripts/fetch.lua`).
pub(crate) static FETCH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/fetch.lua")));

/// Working list -> queue, retry or dead, only if still ours (`scripts/settle.lua`).
pub(crate) static SETTLE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/settle.lua")));

/// Due schedule/retry members -> their queues (`scripts/promote.lua`).
pub(crate) static PROMOTE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/promote.lua")));

/// A dead process whose jobs were recovered -> forgotten, only if still dead and empty
/// (`scripts/forget.lua`).
pub(crate) static FORGET: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/forget.lua")));

/// Schedule or retry members -> the dead set, trimmed (`scripts/kill.lua`).
pub(crate) static KILL: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/kill.lua")));
