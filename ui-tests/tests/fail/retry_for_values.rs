use jobs::job;

#[job(retry_for = 0)]
async fn no_window() {}

#[job(retry_for = "1h")]
async fn window_in_words() {}

#[job(retry_for = 86400000)]
async fn milliseconds_by_mistake() {}

fn main() {}
