//! The content-hashed run cache (`results/cache/` by default).
pub mod files;
pub mod key;
pub mod store;
pub use files::SPEC;
pub use store::{Cache, RunLock, RunState};
pub mod commands;
pub mod transfer;
