use jobs::job;

#[job(log_level = "verbose")]
async fn chatty() {}

#[job(log_level = warn)]
async fn unquoted() {}

fn main() {}
