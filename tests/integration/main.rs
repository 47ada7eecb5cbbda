//! Integration tests: `#[job]` and the client against a real, private `redis-server`.

// Test modules share helpers with `pub`; nothing here is reachable from outside anyway.
#![allow(unreachable_pub)]

mod jobs;
mod support;

mod enqueue_format;
