//! The drill's error: what failed, with the SDK's full error context. A setup error ends the drill
//! (exit status 2); a failed check is not an error, it is a FAIL in the report.

use aws_sdk_dynamodb::error::DisplayErrorContext;
use std::fmt;

#[derive(Debug)]
pub struct DrillError(pub String);

impl fmt::Display for DrillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DrillError {}

impl From<shared::Error> for DrillError {
    fn from(err: shared::Error) -> Self {
        DrillError(err.to_string())
    }
}

pub type Result<T> = std::result::Result<T, DrillError>;

pub fn fail(msg: impl Into<String>) -> DrillError {
    DrillError(msg.into())
}

/// `.ctx("what was being done")` on any error, keeping the SDK's error chain in the message.
pub trait Ctx<T> {
    fn ctx(self, what: impl fmt::Display) -> Result<T>;
}

impl<T, E: std::error::Error> Ctx<T> for std::result::Result<T, E> {
    fn ctx(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| DrillError(format!("{what}: {}", DisplayErrorContext(&e))))
    }
}
