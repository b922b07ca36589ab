//! The content-hashed run cache (`results/cache/` by default).
pub mod key;
pub mod store;
pub use store::{Cache, RunLock, RunState, SPEC};
pub mod commands;
pub mod transfer;
