//! Argument structs and handlers of the subcommand groups (binary-only code).
pub mod bench;
pub mod data;
pub mod experiments;
pub mod report;
