//! The `wasi:keyvalue` store host-test offers its instances: in memory, one per [`Runtime`]
//! (`crate::runtime::Runtime`), shared by every instance made from it, in both versions of the
//! interface (Wasmtime's 0.2.0-draft and Spin's 0.2.0-draft2). A component built with a token
//! store keeps its access tokens here, so a fresh instance finds a valid one. Any identifier
//! opens a bucket of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A bucket's keys and values.
type Bucket = HashMap<String, Vec<u8>>;

/// Buckets by identifier.
#[derive(Clone, Default)]
pub struct Shared(Arc<Mutex<HashMap<String, Bucket>>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Bucket>> {
        // A poisoned lock only means an instance panicked mid-call; the map is still whole.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        self.lock().get(bucket)?.get(key).cloned()
    }

    pub fn set(&self, bucket: &str, key: String, value: Vec<u8>) {
        self.lock()
            .entry(bucket.to_owned())
            .or_default()
            .insert(key, value);
    }

    pub fn delete(&self, bucket: &str, key: &str) {
        if let Some(keys) = self.lock().get_mut(bucket) {
            keys.remove(key);
        }
    }

    /// The bucket's keys, sorted.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .lock()
            .get(bucket)
            .map(|keys| keys.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    }
}

/// Implements one version of `wasi:keyvalue/store` for `HostState` over its [`Shared`] store
/// (`$cursor`: the version's type of a `list-keys` cursor; every key is listed in one page).
macro_rules! host_impl {
    ($store:path, $cursor:ty) => {
        const _: () = {
            use wasmtime::component::Resource;
            use $store::{Bucket, Error, Host, HostBucket, KeyResponse};

            fn name(state: &HostState, bucket: &Resource<Bucket>) -> Result<String, Error> {
                state
                    .bucket_name(bucket.rep())
                    .ok_or_else(|| Error::Other("no such bucket handle".into()))
            }

            impl Host for HostState {
                fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, Error> {
                    let rep = u32::try_from(self.buckets.len())
                        .map_err(|_| Error::Other("too many buckets open".into()))?;
                    self.buckets.push(identifier);
                    Ok(Resource::new_own(rep))
                }
            }

            impl HostBucket for HostState {
                fn get(
                    &mut self,
                    bucket: Resource<Bucket>,
                    key: String,
                ) -> Result<Option<Vec<u8>>, Error> {
                    Ok(self.store.get(&name(self, &bucket)?, &key))
                }

                fn set(
                    &mut self,
                    bucket: Resource<Bucket>,
                    key: String,
                    value: Vec<u8>,
                ) -> Result<(), Error> {
                    self.store.set(&name(self, &bucket)?, key, value);
                    Ok(())
                }

                fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<(), Error> {
                    self.store.delete(&name(self, &bucket)?, &key);
                    Ok(())
                }

                fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Result<bool, Error> {
                    Ok(self.store.get(&name(self, &bucket)?, &key).is_some())
                }

                fn list_keys(
                    &mut self,
                    bucket: Resource<Bucket>,
                    _cursor: $cursor,
                ) -> Result<KeyResponse, Error> {
                    Ok(KeyResponse {
                        keys: self.store.keys(&name(self, &bucket)?),
                        cursor: None,
                    })
                }

                fn drop(&mut self, _bucket: Resource<Bucket>) -> wasmtime::Result<()> {
                    Ok(())
                }
            }
        };
    };
}
pub(crate) use host_impl;
