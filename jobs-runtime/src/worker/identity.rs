//! A process's identity: `hostname:pid:<12 hex>`, as Sidekiq names its processes.

/// This process's identity: the hostname (or `DYNO`, as Sidekiq uses on Heroku), the pid, and
/// 12 random hex characters, so two workers in one process differ.
pub(crate) fn new_identity() -> String {
    let host = hostname();
    let random = crate::jid::Jid::generate();
    format!("{host}:{}:{}", std::process::id(), &random.as_str()[..12])
}

/// The host name shown for this process: `DYNO` when set (Heroku), else the machine's.
pub(crate) fn hostname() -> String {
    std::env::var("DYNO")
        .ok()
        .filter(|dyno| !dyno.is_empty())
        .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn has_host_pid_and_a_random_suffix() {
        let identity = super::new_identity();
        let parts: Vec<&str> = identity.rsplitn(3, ':').collect();
        assert_eq!(parts[0].len(), 12);
        assert_eq!(parts[1], std::process::id().to_string());
        assert!(!parts[2].is_empty());
        assert!(!identity.contains(' '));
        assert_ne!(identity, super::new_identity());
    }
}
