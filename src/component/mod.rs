//! The wit-bindgen glue: translates between the `wif:push` world and the core. No logic lives
//! here; anything worth testing belongs in the core modules.

mod io;
mod sidecar;

use std::sync::{LazyLock, Mutex};

use time::OffsetDateTime;

use crate::config::{Destination, Endpoints, Settings};
use crate::delivery::{self as core_delivery, Receipt, Status};
use crate::error::Error;
use crate::s3::{self, S3Uri};
use crate::secret::Secret;
use crate::sigv4;
use crate::wif::token::TokenSource;

// One component serves both the library and the sidecar worlds. The `wasi-config` feature adds
// the `wasi:config` import for hosts that offer it, `wasi-keyvalue` a token store (Wasmtime's
// `wasi:keyvalue`), `spin` both in Spin's versions, `wasmcloud` both in wasmCloud's. WASI types
// are the `wasip2` crate's, so a stream or request from an export is the same type the I/O
// code uses.
macro_rules! bindings {
    ($world:literal $(, $extra:tt)*) => {
        wit_bindgen::generate!({
            world: $world,
            path: "wit",
            with: {
                "wasi:clocks/wall-clock@0.2.12": wasip2::clocks::wall_clock,
                "wasi:clocks/monotonic-clock@0.2.12": wasip2::clocks::monotonic_clock,
                "wasi:io/error@0.2.12": wasip2::io::error,
                "wasi:io/poll@0.2.12": wasip2::io::poll,
                "wasi:io/streams@0.2.12": wasip2::io::streams,
                "wasi:http/types@0.2.12": wasip2::http::types,
                $($extra: generate,)*
            },
        });
    };
}

#[cfg(all(feature = "wasi-keyvalue", feature = "spin"))]
compile_error!(
    "the features wasi-keyvalue and spin pick two versions of wasi:keyvalue: choose one"
);
#[cfg(all(
    feature = "wasmcloud",
    any(feature = "wasi-config", feature = "wasi-keyvalue")
))]
compile_error!("the feature wasmcloud brings its own wasi:config and wasi:keyvalue: use it alone");
#[cfg(not(any(
    feature = "wasi-config",
    feature = "wasi-keyvalue",
    feature = "wasmcloud"
)))]
bindings!("sidecar");
#[cfg(all(feature = "wasi-config", not(feature = "spin")))]
bindings!("sidecar-config", "wasi:config/store@0.2.0-draft-2024-09-27");
#[cfg(feature = "wasi-keyvalue")]
bindings!("sidecar-keyvalue", "wasi:keyvalue/store@0.2.0-draft");
#[cfg(feature = "spin")]
bindings!(
    "sidecar-spin",
    "wasi:config/store@0.2.0-draft-2024-09-27",
    "wasi:keyvalue/store@0.2.0-draft2"
);

#[cfg(feature = "wasmcloud")]
bindings!(
    "sidecar-wasmcloud",
    "wasi:config/store@0.2.0-draft",
    "wasi:keyvalue/store@0.2.0-draft"
);

// With two versions of wasi:config and of wasi:keyvalue in `wit/`, wit-bindgen names each
// module by its version.
#[cfg(feature = "wasmcloud")]
use wasi::config0_2_0_draft::store as config_store;
#[cfg(feature = "wasi-config")]
use wasi::config0_2_0_draft_2024_09_27::store as config_store;
#[cfg(any(feature = "wasi-keyvalue", feature = "wasmcloud"))]
use wasi::keyvalue0_2_0_draft::store as keyvalue_store;
#[cfg(feature = "spin")]
use wasi::keyvalue0_2_0_draft2::store as keyvalue_store;

use exports::wif::push::delivery;
use exports::wif::push::sigv4 as wit;
use exports::wif::push::wif;
use wasip2::clocks::wall_clock::Datetime;

struct Component;

/// Tokens live as long as the instance: a host that reuses instances (host-test does) reuses
/// them; one that makes an instance per request (`wasmtime serve`, Spin) exchanges each time.
static TOKENS: LazyLock<Mutex<TokenSource>> = LazyLock::new(Default::default);

impl wif::Guest for Component {
    fn subject_token(
        destination: wif::Destination,
        at: Option<Datetime>,
    ) -> Result<String, wif::Error> {
        let destination = destination_from(destination)?;
        let at = at
            .map(datetime_to_time)
            .transpose()
            .map_err(|e| to_wit(&Error::from(e)))?;
        let mut tokens = TOKENS.lock().unwrap_or_else(|e| e.into_inner());
        tokens
            .subject_token(&mut io::WasiIo, &destination, at)
            .map(|t| t.expose().to_owned())
            .map_err(|e| to_wit(&e))
    }

    fn access_token(destination: wif::Destination) -> Result<wif::TokenInfo, wif::Error> {
        let destination = destination_from(destination)?;
        let mut tokens = TOKENS.lock().unwrap_or_else(|e| e.into_inner());
        let token = tokens
            .access_token(&mut io::WasiIo, &destination)
            .map_err(|e| to_wit(&e))?;
        Ok(wif::TokenInfo {
            service_account: destination.federation.service_account,
            expires_at: Datetime {
                seconds: u64::try_from(token.expires_at.unix_timestamp()).unwrap_or(0),
                nanoseconds: 0,
            },
            from_cache: token.from_cache,
        })
    }

    fn cached_tokens() -> Vec<wif::CachedToken> {
        let tokens = TOKENS.lock().unwrap_or_else(|e| e.into_inner());
        tokens
            .cached()
            .map(|(key, token)| wif::CachedToken {
                key: key.to_owned(),
                token: token.token.expose().to_owned(),
                expires_at: Datetime {
                    seconds: u64::try_from(token.expires_at.unix_timestamp()).unwrap_or(0),
                    nanoseconds: 0,
                },
            })
            .collect()
    }

    fn adopt_tokens(list: Vec<wif::CachedToken>) {
        let mut tokens = TOKENS.lock().unwrap_or_else(|e| e.into_inner());
        for entry in list {
            if let Ok(expires_at) = datetime_to_time(entry.expires_at) {
                tokens.adopt(entry.key, Secret::new(entry.token), expires_at);
            }
        }
    }
}

impl delivery::Guest for Component {
    fn deliver(
        destination: wif::Destination,
        object: delivery::Object,
        body: wasip2::io::streams::InputStream,
    ) -> Result<delivery::Receipt, wif::Error> {
        let destination = destination_from(destination)?;
        deliver_stream(&destination, object, body)
            .map(receipt_to_wit)
            .map_err(|e| to_wit(&e))
    }

    fn start_upload(
        destination: wif::Destination,
        object: delivery::Object,
    ) -> Result<String, wif::Error> {
        let destination = destination_from(destination)?;
        let spec = core_delivery::object_spec(
            &destination,
            &object.name,
            object.size,
            object.content_type,
            object.metadata,
        );
        let mut tokens = TOKENS.lock().unwrap_or_else(|e| e.into_inner());
        core_delivery::start_session(&mut io::WasiIo, &mut tokens, &destination, &spec)
            .map_err(|e| to_wit(&e))
    }

    fn plan_s3(
        destination: wif::Destination,
        uri: String,
    ) -> Result<Vec<delivery::Planned>, wif::Error> {
        let destination = destination_from(destination)?;
        let uri = S3Uri::parse(&uri).map_err(|e| to_wit(&e))?;
        let mut tokens = TOKENS.lock().unwrap_or_else(|e| e.into_inner());
        let planned = s3::copy::plan(&mut io::WasiIo, &mut tokens, &destination, &uri)
            .map_err(|e| to_wit(&e))?;
        Ok(planned
            .into_iter()
            .map(|p| delivery::Planned {
                source: p.source.to_string(),
                name: p.name,
                size: p.size,
            })
            .collect())
    }

    fn deliver_s3(
        destination: wif::Destination,
        source: String,
        object: delivery::Object,
    ) -> Result<delivery::Receipt, wif::Error> {
        let destination = destination_from(destination)?;
        let source = S3Uri::parse(&source).map_err(|e| to_wit(&e))?;
        deliver_from_s3(&destination, &source, object)
            .map(receipt_to_wit)
            .map_err(|e| to_wit(&e))
    }

    fn verify(destination: wif::Destination) -> Result<delivery::Receipt, wif::Error> {
        let destination = destination_from(destination)?;
        verify_handshake(&destination)
            .map(receipt_to_wit)
            .map_err(|e| to_wit(&e))
    }

    fn doctor(destination: wif::Destination) -> delivery::Checklist {
        let report = doctor(core_destination(destination).as_ref());
        delivery::Checklist {
            passed: report.passed,
            checks: report
                .checks
                .into_iter()
                .map(|c| delivery::Check {
                    step: c.step.to_owned(),
                    passed: c.passed,
                    saw: c.saw,
                    fix: c.fix,
                })
                .collect(),
            receipt: report.receipt.map(receipt_to_wit),
        }
    }
}

fn doctor(destination: Result<&Destination, &Error>) -> crate::doctor::Report {
    let mut tokens = TOKENS.lock().unwrap_or_else(|e| e.into_inner());
    crate::doctor::run(&mut io::WasiIo, &mut tokens, destination)
}

/// Streams `body` into the bucket as `object` (named without the destination's prefix).
fn deliver_stream(
    destination: &Destination,
    object: delivery::Object,
    body: wasip2::io::streams::InputStream,
) -> Result<Receipt, Error> {
    let mut spec = core_delivery::object_spec(
        destination,
        &object.name,
        object.size,
        object.content_type,
        object.metadata,
    );
    spec.session = object.session;
    let mut tokens = TOKENS.lock().unwrap_or_else(|e| e.into_inner());
    core_delivery::deliver(
        &mut io::WasiIo,
        &mut tokens,
        destination,
        &spec,
        &mut io::StreamSource(body),
    )
}

/// Streams the S3 object `source` into the bucket as `name`.
fn deliver_from_s3(
    destination: &Destination,
    source: &S3Uri,
    object: delivery::Object,
) -> Result<Receipt, Error> {
    let mut tokens = TOKENS.lock().unwrap_or_else(|e| e.into_inner());
    s3::copy::deliver(
        &mut io::WasiIo,
        &mut tokens,
        destination,
        source,
        s3::copy::Target {
            name: object.name,
            content_type: object.content_type,
            metadata: object.metadata,
            session: object.session,
        },
    )
}

fn verify_handshake(destination: &Destination) -> Result<Receipt, Error> {
    let mut tokens = TOKENS.lock().unwrap_or_else(|e| e.into_inner());
    core_delivery::verify(&mut io::WasiIo, &mut tokens, destination)
}

fn receipt_to_wit(r: Receipt) -> delivery::Receipt {
    delivery::Receipt {
        status: match r.status {
            Status::Delivered => delivery::Status::Delivered,
            Status::DeliveredUnconfirmed => delivery::Status::DeliveredUnconfirmed,
        },
        bucket: r.bucket,
        name: r.name,
        generation: r.generation,
        size: r.size,
        crc32c: r.crc32c,
        md5_hash: r.md5_hash,
        upload: r.upload.to_owned(),
        requests: r.requests,
        retries: r.retries,
        elapsed_ms: r.elapsed_ms,
        source: r.source.map(|s| delivery::Source {
            uri: s.uri,
            etag: s.etag,
            version_id: s.version_id,
            checksum: s.checksum,
            checksum_type: s.checksum_type,
        }),
    }
}

fn destination_from(d: wif::Destination) -> Result<Destination, wif::Error> {
    core_destination(d).map_err(|e| to_wit(&e))
}

/// The WIT record as [`Settings`]: the one place the guest names each field.
fn core_destination(d: wif::Destination) -> Result<Destination, Error> {
    let settings = Settings {
        credential_config: d.credential_config,
        project_number: d.project_number,
        pool_id: d.pool_id,
        provider_id: d.provider_id,
        service_account: d.service_account,
        bucket: d.bucket,
        prefix: d.prefix,
        token_lifetime_seconds: d.token_lifetime_seconds,
        aws_region: d.aws_region,
        aws_role_arn: d.aws_role_arn,
        aws_external_id: d.aws_external_id,
        aws_role_session_name: d.aws_role_session_name,
        imds_v1_fallback: Some(d.imds_v1_fallback),
        sign_target_resource: d.sign_target_resource,
        single_request_limit: d.single_request_limit,
        chunk_size: d.chunk_size,
        initial_retry_delay_ms: d.initial_retry_delay_ms,
        upload_timeout_seconds: d.upload_timeout_seconds,
        endpoints: Endpoints {
            sts: d.token_url,
            iam_credentials: d.iam_credentials_url,
            storage: d.storage_url,
        },
    };
    Destination::from_settings(&settings).map_err(Error::from)
}

fn to_wit(e: &Error) -> wif::Error {
    wif::Error {
        step: e.step.name().to_owned(),
        message: e.to_string(),
        fix: e.fix.clone(),
        status: e.status,
        transient: e.transient,
    }
}

fn datetime_to_time(t: Datetime) -> Result<OffsetDateTime, sigv4::SigningError> {
    // SigV4 signs whole seconds.
    i64::try_from(t.seconds)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or(sigv4::SigningError::InvalidTime(t.seconds))
}

impl wit::Guest for Component {
    fn sign(request: wit::Request) -> Result<wit::Signed, String> {
        sign(request).map_err(|e| e.to_string())
    }
}

fn sign(request: wit::Request) -> Result<wit::Signed, sigv4::SigningError> {
    // One cache per instance, as the tokens: an instance that signs again and again (a host
    // that reuses it; host-test's benchmark) derives each day's key once, and one made per
    // request starts empty and costs nothing more than signing without a cache.
    static SIGNING_KEYS: sigv4::SigningKeyCache = sigv4::SigningKeyCache::new();
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let body = match &request.payload {
        wit::Payload::Bytes(bytes) => sigv4::SignableBody::Bytes(bytes),
        wit::Payload::Sha256Hex(hash) => sigv4::SignableBody::Precomputed(hash),
        wit::Payload::Unsigned => sigv4::SignableBody::UnsignedPayload,
    };
    let credentials = sigv4::Credentials {
        access_key_id: request.credentials.access_key_id,
        secret_access_key: Secret::new(request.credentials.secret_access_key),
        session_token: request.credentials.session_token.map(Secret::new),
    };
    let time = match request.time {
        Some(t) => datetime_to_time(t)?,
        None => OffsetDateTime::now_utc(),
    };
    let s = &request.settings;
    let settings = sigv4::SigningSettings {
        signature_location: match s.placement {
            wit::Placement::Header => sigv4::SignatureLocation::Headers,
            wit::Placement::Query => sigv4::SignatureLocation::QueryParams {
                expires_in: u64::from(s.expires_in_seconds),
            },
        },
        session_token_mode: match s.session_token_mode {
            wit::SessionTokenMode::Signed => sigv4::SessionTokenMode::Include,
            wit::SessionTokenMode::AddedAfterSigning => sigv4::SessionTokenMode::AddAfterSigning,
        },
        percent_encoding_mode: if s.double_uri_encode {
            sigv4::PercentEncodingMode::Double
        } else {
            sigv4::PercentEncodingMode::Single
        },
        uri_path_normalization: if s.normalize_path {
            sigv4::UriPathNormalization::Enabled
        } else {
            sigv4::UriPathNormalization::Disabled
        },
        payload_checksum_header: if s.content_sha256_header {
            sigv4::PayloadChecksumHeader::Add
        } else {
            sigv4::PayloadChecksumHeader::Omit
        },
    };
    let (url, out) = sigv4::sign_url(
        &request.method,
        &request.url,
        &headers,
        body,
        &sigv4::SigningParams {
            credentials: &credentials,
            region: &request.region,
            service: &request.service,
            time,
            settings,
        },
        Some(&SIGNING_KEYS),
    )?;
    Ok(wit::Signed {
        url,
        authorization: out.authorization().map(str::to_owned),
        headers: out.headers,
        x_amz_date: out.x_amz_date,
        signed_headers: out.signed_headers,
        credential_scope: out.credential_scope,
        canonical_request: out.canonical_request,
        string_to_sign: out.string_to_sign,
        signature: out.signature,
    })
}

export!(Component);
