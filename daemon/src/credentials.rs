//! systemd credentials (`LoadCredential=`): files in the directory named by
//! `$CREDENTIALS_DIRECTORY`, readable only by the service. Both services take their secrets from
//! there, over their config file and environment.

use std::{io, path::Path};

/// The environment variable systemd sets to the unit's credentials directory.
pub const DIRECTORY_VAR: &str = "CREDENTIALS_DIRECTORY";

/// The credential `name` in `dir`, trimmed; `None` when there is no such file or it is empty
/// (a credential not provisioned yet).
pub fn read(dir: &Path, name: &str) -> io::Result<Option<String>> {
    match std::fs::read_to_string(dir.join(name)) {
        Ok(value) => Ok(Some(value.trim().to_owned()).filter(|value| !value.is_empty())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_and_empty_are_none_and_values_are_trimmed() {
        let dir = std::env::temp_dir().join(format!("kitchen-credentials-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("empty"), "\n").expect("write");
        std::fs::write(dir.join("url"), "amqp://u:p@h/%2f\n").expect("write");
        assert_eq!(read(&dir, "absent").expect("ok"), None);
        assert_eq!(read(&dir, "empty").expect("ok"), None);
        assert_eq!(
            read(&dir, "url").expect("ok").as_deref(),
            Some("amqp://u:p@h/%2f")
        );
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
