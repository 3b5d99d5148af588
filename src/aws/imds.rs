//! The EC2 instance metadata service (IMDS) client the credentials and the region share: an
//! IMDSv2 session token, fetched once, then GETs that carry it.

use super::{Quote, send, status_error};
use crate::config::AwsEndpoints;
use crate::error::{Error, Step};
use crate::io::Io;
use crate::secret::Secret;

pub(super) const IMDS_TOKEN_TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
pub(super) const IMDS_TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";

/// IMDS is the last place looked; when it is unreachable, most likely this is not EC2.
fn off_ec2(err: Error) -> Error {
    err.with_fix(
        "off EC2, set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_REGION); on EC2, check the \
         instance metadata service is enabled and reachable (hop limit)",
    )
}

/// EC2 instance metadata, with an IMDSv2 session token when the configuration names its URL.
pub(super) struct Imds<'a> {
    token_url: Option<&'a str>,
    v1_fallback: bool,
    token: Option<Option<Secret>>,
}

impl<'a> Imds<'a> {
    pub(super) fn new(source: &'a AwsEndpoints, v1_fallback: bool) -> Self {
        Imds {
            token_url: source.imdsv2_session_token_url.as_deref(),
            v1_fallback,
            token: None,
        }
    }

    /// The session token, fetched once; `None` means IMDSv1.
    fn token(&mut self, io: &mut dyn Io, step: Step) -> Result<Option<Secret>, Error> {
        if let Some(token) = &self.token {
            return Ok(token.clone());
        }
        let Some(url) = self.token_url else {
            self.token = Some(None);
            return Ok(None);
        };
        let request = http::Request::put(url)
            .header(IMDS_TOKEN_TTL_HEADER, "21600")
            .body(Vec::new())
            .expect("the token URL was validated with the configuration");
        let response =
            send(io, request, step, "the EC2 metadata service (IMDSv2 token)").map_err(off_ec2)?;
        let token = match response.status().as_u16() {
            200 => Some(Secret::new(String::from_utf8_lossy(response.body()).trim())),
            403..=405 if self.v1_fallback => None,
            status => {
                return Err(status_error(step, "the EC2 metadata service (IMDSv2 token)", url, &response, Quote::Excerpt)
                    .with_fix(if (403..=405).contains(&status) {
                        "off EC2, set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; on EC2, enable IMDSv2 \
                         (or set imds_v1_fallback = true to allow IMDSv1)"
                    } else {
                        "off EC2, set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; on EC2, check the \
                         instance metadata service is enabled (http-endpoint) and reachable (hop limit)"
                    }));
            }
        };
        self.token = Some(token.clone());
        Ok(token)
    }

    /// The text at `url`, with the session token when there is one; `quote` says what an error
    /// may say of a refusal.
    pub(super) fn get(
        &mut self,
        io: &mut dyn Io,
        url: &str,
        step: Step,
        quote: Quote,
    ) -> Result<String, Error> {
        let token = self.token(io, step)?;
        let mut request = http::Request::get(url);
        if let Some(token) = &token {
            request = request.header(IMDS_TOKEN_HEADER, token.expose());
        }
        let request = request.body(Vec::new()).map_err(|_| {
            Error::new(
                step,
                format!(
                    "the metadata URL {url_q} is not valid",
                    url_q = crate::error::quote(url, 100)
                ),
            )
        })?;
        let response = send(io, request, step, "the EC2 metadata service").map_err(off_ec2)?;
        if response.status() != 200 {
            let err = status_error(step, "the EC2 metadata service", url, &response, quote);
            return Err(if response.status() == 404 {
                err.with_fix("attach an IAM role (instance profile) to the instance")
            } else {
                err
            });
        }
        String::from_utf8(response.into_body()).map_err(|_| {
            Error::new(
                step,
                format!("the EC2 metadata service answered {url} with bytes that are not text"),
            )
        })
    }
}
