//! SigV4 signing: signatures a second inside the component (each one a call through Wasmtime,
//! the request lowered into the guest and the signature lifted out) against the `aws-sigv4`
//! crate natively, on the same request (the subject token's `GetCallerIdentity`).

use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use super::{Bench, Row};
use wif_push_host::sign::SignInput;

const URL: &str =
    "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15";
const TARGET: &str =
    "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/a";
const KEY: &str = "AKIDEXAMPLE";
const BATCH: u64 = 200;
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

pub(super) async fn run(bench: &Bench) -> Result<Vec<Row>> {
    let budget = Duration::from_secs_f64(bench.args.sign_seconds.max(0.1));
    let json = serde_json::json!({
        "method": "POST", "url": URL,
        "headers": {"x-goog-cloud-target-resource": TARGET},
        "region": "us-east-1", "service": "sts", "time": "2015-08-30T12:36:00Z",
        "access_key_id": KEY, "secret_access_key": SECRET,
    });
    let request = SignInput::parse(&json.to_string())?.into_wit()?;
    let mut session = wif_push_host::runtime::Session::new(
        &bench.runtime,
        &Default::default(),
        wif_push_host::outbound::Outbound::new(Default::default())?,
    )
    .await?;
    let ours = session.sign(&request).await?;

    // Agree first: the same signature from both, or the comparison means nothing.
    let theirs = native_sign();
    anyhow::ensure!(
        ours.signature == theirs,
        "the component and aws-sigv4 disagree: {} vs {theirs}",
        ours.signature
    );

    // Alternate batches, so both sides meet the same load on a shared machine.
    let (mut component, mut native) = (Duration::ZERO, Duration::ZERO);
    let mut batches = 0u64;
    while component + native < 2 * budget {
        let started = Instant::now();
        for _ in 0..BATCH {
            std::hint::black_box(session.sign(&request).await?);
        }
        component += started.elapsed();
        let started = Instant::now();
        for _ in 0..BATCH {
            std::hint::black_box(native_sign());
        }
        native += started.elapsed();
        batches += 1;
    }
    let signed = (batches * BATCH) as f64;
    let (component, native) = (
        signed / component.as_secs_f64(),
        signed / native.as_secs_f64(),
    );
    eprintln!("sigv4: component {component:.0}/s, aws-sigv4 {native:.0}/s");

    let group = "SigV4 signing";
    let ratio = component / native;
    Ok(vec![
        Row::new(group, "aws-sigv4 crate, native", "signatures/s")
            .value(native)
            .ratio(Some(1.0), "native")
            .note("the same request, signed in this process, one thread, in batches alternating with the component's"),
        Row::new(
            group,
            "wif-push component, through Wasmtime",
            "signatures/s",
        )
        .value(component)
        .ratio(Some(ratio), "native")
        .target("≥ 0.5× native", Some(ratio >= 0.5))
        .note(
            "STS GetCallerIdentity with the target-resource header; each call lowers the \
                 request into the instance and lifts the signature, canonical request and \
                 string to sign out",
        ),
    ])
}

fn native_sign() -> String {
    let identity: Identity = Credentials::from_keys(KEY, SECRET, None).into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("sts")
        .time(SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160))
        .settings(SigningSettings::default())
        .build()
        .expect("complete signing parameters")
        .into();
    let request = SignableRequest::new(
        "POST",
        URL,
        [("x-goog-cloud-target-resource", TARGET)].into_iter(),
        SignableBody::Bytes(b""),
    )
    .expect("a valid request");
    let (instructions, signature) = sign(request, &params).expect("signable").into_parts();
    std::hint::black_box(instructions);
    signature
}
