//! The one error enum of the core. Each variant maps to exactly one error
//! kind atom in the NIF crate and to one `%Types.Error{}` shape in Elixir.

/// Errors the core reports. Variants carry data; messages are the exact
/// strings the original Elixir layer returned, produced by `Display`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoreError {
    /// Input that cannot be converted (too deep, improper list, ...).
    #[error("{0}")]
    InvalidInput(String),
    /// The event store's asynchronous queue is full (its capacity).
    #[error("event store queue full (capacity {0})")]
    QueueFull(usize),
    /// The event store was closed (`Store::close`): it takes no more writes.
    #[error("Event store not available")]
    Closed,
    /// A configuration failed the ConfigValidator rules.
    #[error(transparent)]
    Config(#[from] crate::validation::ConfigError),
    /// An event failed the EventValidator rules.
    #[error(transparent)]
    Event(#[from] crate::validation::EventRule),
    /// The work exceeds the byte budget (`.0`) of a normal-scheduler call:
    /// nothing was done, the caller reruns it on a dirty scheduler.
    #[error("over the normal-scheduler budget of {0} bytes")]
    OverBudget(usize),
    /// Something that should be impossible (poisoned lock, broken invariant).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result alias used across the core.
pub type CoreResult<T> = Result<T, CoreError>;

impl CoreError {
    /// Maps a poisoned lock (a panic while holding it) to an error value.
    pub fn poisoned<T>(_: std::sync::PoisonError<T>) -> Self {
        CoreError::Internal("lock poisoned".to_string())
    }
}
