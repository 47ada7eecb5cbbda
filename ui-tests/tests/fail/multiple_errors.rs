use jobs::job;

#[job(queues = "critical")]
async fn send_email(to: &str) {
    let _ = to;
}

fn main() {}
