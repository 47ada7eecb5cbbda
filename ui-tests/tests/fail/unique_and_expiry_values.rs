use jobs::job;

#[job(unique_for = 0)]
async fn zero() {}

#[job(unique_for = -5)]
async fn negative() {}

#[job(unique_for = 604800000)]
async fn milliseconds_by_mistake() {}

#[job(unique_for = 600, unique_until = "finish")]
async fn unknown_until() {}

#[job(unique_until = "start")]
async fn until_without_period() {}

#[job(unique_key = user_id)]
async fn key_without_period(user_id: u64) {
    let _ = user_id;
}

#[job(expires_in = 0)]
async fn expires_at_once() {}

#[job(expires_in = "1h")]
async fn expires_in_words() {}

fn main() {}
