//! Names no other test, and no other test run, uses: for databases, roles, queues, exchanges,
//! kitchen ids and directories, so tests run in parallel against the same services.

use std::sync::atomic::{AtomicU32, Ordering};

/// `{prefix}_{pid}_{counter}_{nanos}`: unique within the process (the counter) and across runs
/// (the process id and the clock). With a prefix of ASCII lowercase letters, digits and `_` it
/// is also a valid unquoted SQL identifier.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::unique;

    #[test]
    fn names_differ_and_keep_their_prefix() {
        let (a, b) = (unique("q"), unique("q"));
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("q_{}_", std::process::id())), "{a}");
    }
}
