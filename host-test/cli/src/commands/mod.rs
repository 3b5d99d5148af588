//! The subcommands longer than a few lines, one file each; `main.rs` parses and dispatches.

pub mod deliver;
pub mod doctor;
pub mod emulate;
pub mod partner_kit;
pub mod serve;
pub mod sign;
pub mod token;
