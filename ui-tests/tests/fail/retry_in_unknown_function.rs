use jobs::job;

#[job(retry_in = no_such_function, retries_exhausted = nor_this_one)]
async fn unknown_functions() {}

fn main() {}
