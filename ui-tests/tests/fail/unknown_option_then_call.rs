// After a mistyped option, `#[job]` still defines the job type, so the code that uses it adds
// no errors of its own. The uses sit in another module: rustc already hides unresolved
// names in the module of a macro's error, but not beyond it.
mod mailers {
    use jobs::job;

    #[job(queues = "mailers")]
    pub async fn send_email(to: String) {
        let _ = to;
    }
}

mod signup {
    use crate::mailers::*;

    pub async fn sign_up(to: String) -> Result<(), jobs::Error> {
        send_email(to.clone()).await;
        SendEmail::perform_async(to.clone()).await?;
        SendEmail::perform_in(std::time::Duration::from_secs(60), to.clone()).await?;
        SendEmail::set().queue("critical").perform_async(to.clone()).await?;
        crate::mailers::SendEmail::perform_bulk([SendEmail { to }]).await?;
        Ok(())
    }
}

fn main() {
    let _ = signup::sign_up(String::new());
}
