use jobs::job;

#[job(cron = "0 3 * * *")]
async fn score_generation(date: String) {
    let _ = date;
}

fn main() {}
