//! wif-push-host: the native Wasmtime host for the wif-push component, for embedding in a Rust
//! program. The component itself is built by this crate's build script and embedded by path
//! ([`runtime::BUILT_COMPONENT`]); another may be loaded instead.
//!
//! An embedder gets:
//! - [`runtime`]: the component loaded once and its compilation cached on disk
//!   ([`runtime::Runtime`]), the environment it sees ([`runtime::GuestEnv`]: AWS credentials
//!   and settings), and [`runtime::Session`]s calling its library exports — token, verify,
//!   deliver from any `AsyncRead`, SigV4 signing — with receipts and failed steps as Rust types;
//! - [`outbound`]: the policy every request of the component passes through (allowed hosts,
//!   `--connect-to` routes, one pooled TLS client with timeouts);
//! - [`serve`]: the component's sidecar world served on a loopback port, on a pool of reused
//!   instances that share their tokens, with graceful shutdown;
//! - [`dest`]: a `DEST.toml` read into the core's settings, and the sidecar's environment for
//!   one or several destinations;
//! - [`batch`]: many objects delivered concurrently on a pool of instances, exactly once across
//!   crashes with a delivery ledger;
//! - [`kit`]: the partner kit (the partner's set-up as a gcloud script and Terraform, the
//!   checklist and the sender's `DEST.toml`);
//! - [`sign`]: the JSON form of a signing request and its signature (`host-test sign`'s).

pub mod batch;
pub mod dest;
mod egress;
pub mod file_stream;
mod framing;
pub mod kit;
pub mod outbound;
pub mod runtime;
pub mod serve;
pub mod sign;
pub mod token_store;
