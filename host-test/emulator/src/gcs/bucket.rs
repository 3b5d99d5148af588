//! The bucket: the objects in it, the resumable sessions open on it, the faults its requests
//! meet, and `ifGenerationMatch`, applied atomically when an object is created.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use time::OffsetDateTime;

use super::errors::{forbidden, internal, precondition_failed};
use super::faults::{FaultPlan, Faults};
use super::object::{Object, ObjectSpec, StoredObject};
use super::resumable;
use super::store::{Staging, Store};
use crate::reply::Reply;
use crate::state::{State, lock};

/// The bucket and what is going on in it.
pub(crate) struct GcsState {
    pub(super) store: Store,
    pub(super) objects: Mutex<BTreeMap<String, Object>>,
    pub(super) sessions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<resumable::Session>>>>,
    pub(super) faults: Mutex<Faults>,
    pub(super) last_generation: Mutex<i64>,
}

impl GcsState {
    pub(crate) fn new(
        dir: Option<&Path>,
        crc32c_only: bool,
        faults: &FaultPlan,
    ) -> anyhow::Result<Self> {
        let store = Store::open(dir, crc32c_only).map_err(|e| {
            anyhow::anyhow!(
                "the emulator could not prepare its object directory {}: {e}",
                dir.map_or_else(String::new, |d| d.display().to_string())
            )
        })?;
        Ok(GcsState {
            store,
            objects: Mutex::default(),
            sessions: Mutex::default(),
            faults: Mutex::new(Faults::new(faults)),
            last_generation: Mutex::new(0),
        })
    }

    pub(crate) fn objects(&self) -> Vec<StoredObject> {
        lock(&self.objects)
            .values()
            .map(|o| o.stored.clone())
            .collect()
    }

    pub(crate) fn object(&self, name: &str) -> Option<StoredObject> {
        lock(&self.objects).get(name).map(|o| o.stored.clone())
    }

    pub(crate) fn set_faults(&self, plan: &FaultPlan) {
        *lock(&self.faults) = Faults::new(plan);
    }

    /// A microsecond timestamp, unique and increasing even when the clock stands still.
    fn next_generation(&self, now: OffsetDateTime) -> i64 {
        let mut last = lock(&self.last_generation);
        let micros = (now.unix_timestamp_nanos() / 1000) as i64;
        *last = micros.max(*last + 1);
        *last
    }

    /// Whether creating `name` with `ifGenerationMatch` may go ahead.
    pub(super) fn check(
        &self,
        state: &State,
        name: &str,
        if_generation_match: Option<i64>,
    ) -> Result<(), Reply> {
        let objects = lock(&self.objects);
        precondition(state, objects.get(name), if_generation_match)
    }

    /// Creates the object from `staging`, if the precondition still holds (atomically: two
    /// uploads of one name cannot both succeed). Returns the object resource.
    pub(super) fn commit(
        &self,
        state: &State,
        spec: &ObjectSpec,
        if_generation_match: Option<i64>,
        staging: Staging,
    ) -> Result<Value, Reply> {
        let mut objects = lock(&self.objects);
        precondition(state, objects.get(&spec.name), if_generation_match)?;
        let path = self.store.object_path(&spec.name);
        let digest = staging.commit(path.as_deref()).map_err(internal)?;
        let now = state.now();
        let generation = self.next_generation(now);
        let object = Object::new(&state.config.bucket, spec, generation, &digest, now, path);
        let resource = object.resource.clone();
        objects.insert(spec.name.clone(), object);
        Ok(resource)
    }
}

/// `ifGenerationMatch=0`: only if there is no such object. Without a precondition (or with the
/// live generation) an existing object would be replaced, which needs `storage.objects.delete`.
fn precondition(
    state: &State,
    existing: Option<&Object>,
    if_generation_match: Option<i64>,
) -> Result<(), Reply> {
    match (existing, if_generation_match) {
        (None, None | Some(0)) => Ok(()),
        (Some(object), Some(g)) if g != 0 && object.stored.generation == g => {
            Err(forbidden(state, "storage.objects.delete", "object"))
        }
        (Some(_), None) => Err(forbidden(state, "storage.objects.delete", "object")),
        (_, Some(_)) => Err(precondition_failed()),
    }
}
