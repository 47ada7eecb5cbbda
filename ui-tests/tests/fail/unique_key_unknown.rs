use jobs::job;

// `unique_key` names an argument, or a function of the job: here it is neither.
#[job(unique_for = 600, unique_key = usr_id)]
async fn charge(user_id: u64) {
    let _ = user_id;
}

fn main() {}
