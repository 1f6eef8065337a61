//! [`CliError`]: why a command failed, and the exit code that tells a script so.

use necrostack::backend::redis::AdminError;
use necrostack::backend::BackendError;

/// A failed command. Every message comes from the backend with the URL's password
/// already masked, or from this tool, which never prints a URL's password.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Redis could not be reached, refused a command, or an argument was wrong for it.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// Connecting failed.
    #[error(transparent)]
    Connect(#[from] BackendError),
    /// The dead letter asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Some of the entries asked for were not handled (each one was reported above).
    #[error("{0}")]
    Incomplete(String),
    /// The command needs a confirmation it did not get.
    #[error("{0}")]
    Refused(String),
}

impl CliError {
    /// 2 for a command that was refused as given (like clap's usage errors), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Refused(_) => 2,
            CliError::Admin(AdminError::InvalidId(_)) => 2,
            _ => 1,
        }
    }
}
