use jobs::{JobError, job};

#[job(retry_in = 5)]
async fn delay_not_a_function() {}

#[job(retries_exhausted = "notify")]
async fn hook_in_quotes() {}

fn wrong_signature(count: u32) -> u32 {
    count
}

#[job(retry_in = wrong_signature)]
async fn wrong_signature_job() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
