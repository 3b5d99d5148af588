//! What the uploads share: staging the bytes, checking the declared checksums against them, and
//! creating the object, answered with its resource.

use serde_json::Value;

use super::Fail;
use super::errors::internal;
use super::object::{Expected, ObjectSpec};
use super::store::{Staging, Store};
use crate::reply::Reply;
use crate::state::State;

pub(super) fn stage(state: &State, discard: bool, md5_declared: bool) -> Result<Staging, Reply> {
    if discard {
        Store::Discard.stage(md5_declared).map_err(internal)
    } else {
        state.gcs.store.stage(md5_declared).map_err(internal)
    }
}

/// Whether the upload declared an MD5 before its data (which a CRC32C-only store then computes).
pub(super) fn declares_md5(spec: &ObjectSpec, hash_header: Option<&Expected>) -> bool {
    spec.expected.md5.is_some() || hash_header.is_some_and(|h| h.md5.is_some())
}

/// Checks the declared checksums and creates the object.
pub(super) fn create(
    state: &State,
    spec: ObjectSpec,
    hash_header: Option<Expected>,
    if_generation_match: Option<i64>,
    staging: Staging,
) -> Result<Reply, Fail> {
    if let Some(expected) = hash_header {
        expected.verify(staging.digest())?;
    }
    spec.expected.verify(staging.digest())?;
    let resource = state
        .gcs
        .commit(state, &spec, if_generation_match, staging)?;
    Ok(created(resource))
}

pub(super) fn created(resource: Value) -> Reply {
    let outcome = format!(
        "created {} generation {} ({} bytes)",
        resource["name"].as_str().unwrap_or_default(),
        resource["generation"].as_str().unwrap_or_default(),
        resource["size"].as_str().unwrap_or_default()
    );
    Reply::ok(resource, outcome)
}
