//! Every return type a job may have.

use std::fmt;

use jobs::{JobError, job};

/// A hand-written error, as `thiserror` would generate it.
#[derive(Debug)]
enum ImportError {
    /// The file was empty.
    Empty,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the file is empty"),
        }
    }
}

impl std::error::Error for ImportError {}

#[job]
async fn returns_unit() {}

#[job]
async fn returns_explicit_unit() -> () {}

#[job]
async fn returns_job_error() -> Result<(), JobError> {
    Err(JobError::msg("nope"))
}

#[job]
async fn returns_io_error() -> Result<(), std::io::Error> {
    Err(std::io::Error::other("disk full"))
}

#[job]
async fn returns_string() -> Result<(), String> {
    Err("nope".to_owned())
}

#[job]
async fn returns_custom_error() -> Result<(), ImportError> {
    Err(ImportError::Empty)
}

fn main() {
    let _ = ReturnsUnit::perform_async();
    let _ = ReturnsExplicitUnit::perform_async();
    let _ = ReturnsJobError::perform_async();
    let _ = ReturnsIoError::perform_async();
    let _ = ReturnsString::perform_async();
    let _ = ReturnsCustomError::perform_async();
}
