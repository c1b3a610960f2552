//! The one error type of the module, and the startup error of the config loader.

use std::fmt;

/// A `Result` whose error defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is.
///
/// Each kind is one `type` of the HTTP error body (`{"type", "message"}`); the
/// HTTP layer maps kinds to status codes, the core knows nothing of HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A looked-up record does not exist.
    NotFound,
    /// The input is malformed or fails validation.
    InvalidData,
    /// The caller is not authenticated, or the credentials are wrong.
    Unauthorized,
    /// The operation is not allowed (or not supported by the provider).
    NotAllowed,
    /// A unique value is already taken.
    DuplicateError,
    /// A concurrent change conflicts with this one.
    Conflict,
    /// The module reached a state it should not have.
    UnexpectedState,
    /// A storage backend failed.
    DatabaseError,
    /// The provider does not implement the method (the error's message names
    /// it); [`crate::AuthModule`] answers Medusa's "not implemented" message.
    NotSupported,
    /// The server is too busy to do the work now (a full hashing queue, a
    /// store that cannot be reached); the message is client-safe. HTTP: 503
    /// with `Retry-After`.
    Unavailable,
}

impl ErrorKind {
    /// The `type` string used in error bodies, e.g. `not_found`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::InvalidData => "invalid_data",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::NotAllowed => "not_allowed",
            ErrorKind::DuplicateError => "duplicate_error",
            ErrorKind::Conflict => "conflict",
            ErrorKind::UnexpectedState => "unexpected_state",
            ErrorKind::DatabaseError => "database_error",
            ErrorKind::NotSupported => "not_allowed",
            ErrorKind::Unavailable => "unexpected_state",
        }
    }

    /// Whether this kind describes a fault of the server rather than of the input.
    pub const fn is_internal(self) -> bool {
        matches!(self, ErrorKind::UnexpectedState | ErrorKind::DatabaseError)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of every fallible module operation: a kind, a message, context
/// (which provider instance, which store, ...) and an optional source (a
/// backend's or a third-party provider's own error).
///
/// The message of a client-facing kind is safe to show to a client; the
/// message, context and source of an internal kind ([`ErrorKind::is_internal`])
/// are for the log only. `Display` shows the kind, the message and the context:
/// `database_error: reading an auth identity failed (store: sqlite)`.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    context: Vec<(&'static str, String)>,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if !self.context.is_empty() {
            f.write_str(" (")?;
            for (i, (k, v)) in self.context.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{k}: {v}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl Error {
    /// A new error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            context: Vec::new(),
            source: None,
        }
    }

    /// Adds a context entry (e.g. `("provider", "emailpass")`), shown by
    /// `Display` after the message; never part of a client-facing message.
    pub fn with_context(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.context.push((key, value.into()));
        self
    }

    /// The context entries, oldest first.
    pub fn context(&self) -> &[(&'static str, String)] {
        &self.context
    }

    /// Attaches the underlying cause.
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message (client-safe unless the kind is internal).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// A [`ErrorKind::NotFound`] error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// An [`ErrorKind::InvalidData`] error.
    pub fn invalid_data(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidData, message)
    }

    /// An [`ErrorKind::Unauthorized`] error.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthorized, message)
    }

    /// An [`ErrorKind::NotAllowed`] error.
    pub fn not_allowed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotAllowed, message)
    }

    /// An [`ErrorKind::DuplicateError`] error.
    pub fn duplicate(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::DuplicateError, message)
    }

    /// An [`ErrorKind::Conflict`] error.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    /// An [`ErrorKind::UnexpectedState`] error.
    pub fn unexpected(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::UnexpectedState, message)
    }

    /// An [`ErrorKind::Unavailable`] error: try again later.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// An [`ErrorKind::DatabaseError`] error wrapping a backend error.
    pub fn database(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self::new(ErrorKind::DatabaseError, message).with_source(source)
    }

    /// The error a provider's default method answers: `method` (`register`,
    /// `update`, `validate_callback`) is not supported. [`crate::AuthModule`]
    /// turns it into Medusa's message naming the provider instance.
    pub fn not_supported(method: &'static str) -> Self {
        Self::new(ErrorKind::NotSupported, method)
    }
}

/// A startup failure: the configuration cannot be read or does not describe a
/// module that can be built. Its message names the file, line and column, or the
/// provider instance and field, and never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    /// A new configuration error.
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// A provider option that failed validation: the field path inside the
/// provider's `options` and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionsError {
    field: String,
    message: String,
}

impl OptionsError {
    /// `field` is the dotted path inside `options` (e.g. `hash.memory_kib`).
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        OptionsError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The offending field's path.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What is wrong with it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "options.{}: {}", self.field, self.message)
    }
}

impl std::error::Error for OptionsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_contract_names() {
        assert_eq!(ErrorKind::DuplicateError.as_str(), "duplicate_error");
        assert_eq!(ErrorKind::NotAllowed.as_str(), "not_allowed");
        assert!(ErrorKind::DatabaseError.is_internal());
        assert!(!ErrorKind::Unauthorized.is_internal());
    }

    #[test]
    fn not_supported_is_a_kind() {
        let e = Error::not_supported("register");
        assert_eq!(e.kind(), ErrorKind::NotSupported);
        assert_eq!(e.message(), "register");
        assert_ne!(
            Error::not_allowed("register").kind(),
            ErrorKind::NotSupported
        );
    }

    #[test]
    fn context_is_displayed_after_the_message() {
        let e = Error::unexpected("it broke")
            .with_context("provider", "emailpass")
            .with_context("store", "sqlite");
        assert_eq!(
            e.to_string(),
            "unexpected_state: it broke (provider: emailpass, store: sqlite)"
        );
        assert_eq!(e.context()[0], ("provider", "emailpass".to_owned()));
        assert_eq!(Error::conflict("x").to_string(), "conflict: x");
    }
}
