//! Webhooks, the sans-I/O part: the checked receiver URL and the bounded
//! retry queue. Building bodies, the HTTP client and the sender tasks are
//! `gopxe::webhook`.
//!
//! - [`url`]: `http://host[:port][/path][?query]`, checked at start-up.
//! - [`outbox`]: one receiver's bounded queue with retries and backoff,
//!   driven by the time passed in.

pub mod outbox;
pub mod url;

pub use url::HookUrl;
