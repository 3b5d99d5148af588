//! host-test: the native Wasmtime host for the wif-push component. It supplies credentials and
//! configuration, owns the outbound policy, and runs the component as a CLI.

pub mod bench;
pub mod demo;
pub mod dest;
pub mod outbound;
pub mod runtime;
pub mod serve;
pub mod sign;

/// The Google emulator is the crate `wif-push-emulator`; it keeps its name here.
pub use wif_push_emulator as emulator;
