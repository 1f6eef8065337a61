//! [`BoxError`]: any error, boxed so that it can cross threads.
//!
//! A leaf module: organs return it, backends wrap their causes in it, and neither needs
//! to import the other's errors to do so.

/// Any error that can cross threads, boxed: what an organ's handler failed with (its own
/// error type, boxed by the generated code) and the cause inside a
/// [`BackendError`](crate::BackendError).
///
/// ```
/// use necrostack::BoxError;
///
/// let error: BoxError = "the ledger is closed".into();
/// assert_eq!(error.to_string(), "the ledger is closed");
/// let error: BoxError = Box::new(std::io::Error::other("disk full"));
/// assert!(error.downcast_ref::<std::io::Error>().is_some());
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
