//! wif-push: keyless delivery of files from AWS into a partner's Google Cloud Storage bucket
//! through Workload Identity Federation, as a WASI 0.2 component.
//!
//! The modules here are a sans-IO core: plain functions over plain values, compiled and tested
//! natively. The only WASI code is in `component`, which translates between the WIT world and
//! the core and does nothing else.

pub mod aws;
pub mod config;
pub mod delivery;
pub mod doctor;
pub mod error;
pub mod io;
pub mod retry;
pub mod s3;
pub mod secret;
pub mod sidecar;
pub mod sigv4;
pub mod wif;

#[cfg(test)]
mod testing;

#[cfg(target_arch = "wasm32")]
mod component;
