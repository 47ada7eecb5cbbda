// After a parameter that cannot be a job argument, `#[job]` still defines the job type, so the
// code that uses it adds no errors of its own. The uses sit in another module: rustc already
// hides unresolved names in the module of a macro's error, but not beyond it.
mod mailers {
    use jobs::job;

    #[job]
    pub async fn send_email(to: &str) {
        let _ = to;
    }
}

mod signup {
    use crate::mailers::*;

    pub async fn sign_up(to: &str) -> Result<(), jobs::Error> {
        send_email(to).await;
        SendEmail::perform_async(to).await?;
        SendEmail::perform_at(chrono::Utc::now(), to).await?;
        let _ = SendEmail::set().queue("critical");
        Ok(())
    }
}

fn main() {
    let _ = signup::sign_up("ada@example.com");
}
