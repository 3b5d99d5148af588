//! What the uploads share: staging the bytes, checking the declared checksums against them, and
//! creating the object, answered with its resource.

use http::HeaderMap;
use serde_json::Value;

use super::Fail;
use super::errors::internal;
use super::object::{Expected, ObjectSpec};
use super::params::goog_hash;
use super::store::{Staging, Store};
use crate::reply::Reply;
use crate::state::State;

/// A single-request upload (media or multipart) whose data is about to be read into `staging`.
/// One that its precondition already dooms is still read to its end, so that the client hears the
/// answer, but not kept.
pub(super) struct Single {
    spec: ObjectSpec,
    hash_header: Option<Expected>,
    if_generation_match: Option<i64>,
    doomed: Option<Reply>,
    pub(super) staging: Staging,
}

impl Single {
    pub(super) fn begin(
        state: &State,
        spec: ObjectSpec,
        headers: &HeaderMap,
        if_generation_match: Option<i64>,
    ) -> Result<Self, Reply> {
        let hash_header = goog_hash(headers)?;
        let doomed = state
            .gcs
            .check(state, &spec.name, if_generation_match)
            .err();
        let md5_declared = declares_md5(&spec, hash_header.as_ref());
        let staging = stage(state, doomed.is_some(), md5_declared)?;
        Ok(Single {
            spec,
            hash_header,
            if_generation_match,
            doomed,
            staging,
        })
    }

    /// All data is in: answers the doomed upload, or creates the object.
    pub(super) fn finish(self, state: &State) -> Result<Reply, Fail> {
        if let Some(reply) = self.doomed {
            return Ok(reply);
        }
        let resource = complete(
            state,
            &self.spec,
            self.if_generation_match,
            self.hash_header,
            self.staging,
        )?;
        Ok(created(resource))
    }
}

fn stage(state: &State, discard: bool, md5_declared: bool) -> Result<Staging, Reply> {
    if discard {
        Store::Discard.stage(md5_declared).map_err(internal)
    } else {
        state.gcs.store.stage(md5_declared).map_err(internal)
    }
}

/// Whether the upload declared an MD5 before its data (which a CRC32C-only store then computes).
fn declares_md5(spec: &ObjectSpec, hash_header: Option<&Expected>) -> bool {
    spec.expected.md5.is_some() || hash_header.is_some_and(|h| h.md5.is_some())
}

/// All bytes are in: checks them against the declared checksums (`X-Goog-Hash`, then the
/// metadata's), then creates the object; returns its resource.
pub(super) fn complete(
    state: &State,
    spec: &ObjectSpec,
    if_generation_match: Option<i64>,
    hash_header: Option<Expected>,
    staging: Staging,
) -> Result<Value, Reply> {
    if let Some(expected) = hash_header {
        expected.verify(staging.digest())?;
    }
    spec.expected.verify(staging.digest())?;
    state.gcs.commit(state, spec, if_generation_match, staging)
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
