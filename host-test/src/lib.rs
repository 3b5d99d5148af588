//! host-test: the native Wasmtime host for the wif-push component. It supplies credentials and
//! configuration, owns the outbound policy, and runs the component as a CLI.

pub mod bench;
pub mod demo;
pub mod dest;
pub mod emulator;
pub mod outbound;
pub mod runtime;
pub mod serve;
pub mod sign;
