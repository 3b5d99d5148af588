//! Google's side of the flow: the AWS subject token, the STS exchange, impersonation, and the
//! token source that ties them together and caches the result.

pub mod iam;
pub mod mapping;
pub mod sts;
pub mod subject_token;
pub mod token;
