//! Cloud Storage delivery: checksums, the JSON API upload requests and their answers, and the
//! delivery loop that never loses, corrupts or overwrites an object.

pub mod checksum;
pub mod deliver;
pub mod upload;
