//! The AWS subject token as STS checks it: SigV4 signatures from aws-sigv4 (built here, so each
//! test can vary one thing) and frozen tokens written by google-auth (Python) and botocore, the
//! target-resource header, the clock, the credential scope, and AWS's words for each refusal.

mod common;

use std::time::Duration;

use http::StatusCode;
use serde_json::json;
use time::macros::datetime;
use wif_push_emulator::{AwsIdentity, EmulatorConfig};

use common::tokens::*;
use common::*;

const SIGNATURE_DOES_NOT_MATCH: &str = "Received invalid AWS response of type SignatureDoesNotMatch \
    with error message: The request signature we calculated does not match the signature you \
    provided. Check your AWS Secret Access Key and signing method. Consult the service \
    documentation for details.";
const INVALID_CLIENT_TOKEN_ID: &str = "Received invalid AWS response of type InvalidClientTokenId \
    with error message: The security token included in the request is invalid.";

/// Written by google-auth 2.63 (`aws.Credentials.retrieve_subject_token`, clock frozen at
/// 2025-06-01T12:00:00Z, region eu-west-1): session token signed, target header unsigned.
const GOOGLE_AUTH_TOKEN: &str = "%7B%22headers%22%3A%5B%7B%22key%22%3A%22Authorization%22%2C%22value%22%3A%22AWS4-HMAC-SHA256%20Credential%3DASIAEMULATORSESSION1/20250601/eu-west-1/sts/aws4_request%2C%20SignedHeaders%3Dhost%3Bx-amz-date%3Bx-amz-security-token%2C%20Signature%3D4014d78e786935e3a20fc3defdd9880a1345f80dba6d56f22e3cf850a39413f5%22%7D%2C%7B%22key%22%3A%22host%22%2C%22value%22%3A%22sts.eu-west-1.amazonaws.com%22%7D%2C%7B%22key%22%3A%22x-amz-date%22%2C%22value%22%3A%2220250601T120000Z%22%7D%2C%7B%22key%22%3A%22x-amz-security-token%22%2C%22value%22%3A%22FQoGZXIvYXdzEXAMPLE%2Bsession/token%3D%3D%22%7D%2C%7B%22key%22%3A%22x-goog-cloud-target-resource%22%2C%22value%22%3A%22//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/aws-partner/providers/aws%22%7D%5D%2C%22method%22%3A%22POST%22%2C%22url%22%3A%22https%3A//sts.eu-west-1.amazonaws.com%3FAction%3DGetCallerIdentity%26Version%3D2011-06-15%22%7D";

/// Signed by botocore's `SigV4Auth` (us-east-1, target header signed, keys in mixed case).
const BOTOCORE_TOKEN: &str = "%7B%22url%22%3A%22https%3A//sts.us-east-1.amazonaws.com%3FAction%3DGetCallerIdentity%26Version%3D2011-06-15%22%2C%22method%22%3A%22POST%22%2C%22headers%22%3A%5B%7B%22key%22%3A%22x-goog-cloud-target-resource%22%2C%22value%22%3A%22//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/aws-partner/providers/aws%22%7D%2C%7B%22key%22%3A%22X-Amz-Date%22%2C%22value%22%3A%2220261126T063751Z%22%7D%2C%7B%22key%22%3A%22Authorization%22%2C%22value%22%3A%22AWS4-HMAC-SHA256%20Credential%3DAKIAEMULATORLONGTERM/20261126/us-east-1/sts/aws4_request%2C%20SignedHeaders%3Dhost%3Bx-amz-date%3Bx-goog-cloud-target-resource%2C%20Signature%3De3f207a283fd9c5679c5488c5e3c8c3336b71b3eae73bbfb31d05b4afd3c319f%22%7D%2C%7B%22key%22%3A%22host%22%2C%22value%22%3A%22sts.us-east-1.amazonaws.com%22%7D%5D%7D";

fn third_party_config() -> EmulatorConfig {
    let mut config = config();
    config.identities.push(AwsIdentity {
        access_key_id: "ASIAEMULATORSESSION1".into(),
        secret_access_key: "emulator/secret+key/SESSION".into(),
        session_token: Some("FQoGZXIvYXdzEXAMPLE+session/token==".into()),
        role_arn: "arn:aws:sts::111122223333:assumed-role/wif-push-sender/python".into(),
    });
    config.identities.push(AwsIdentity {
        access_key_id: "AKIAEMULATORLONGTERM".into(),
        secret_access_key: "long/term+secret/KEY".into(),
        session_token: None,
        role_arn: "arn:aws:sts::111122223333:assumed-role/wif-push-sender/boto".into(),
    });
    config
}

#[tokio::test]
async fn signed_target_without_session_token() {
    let emulator = start(config()).await;
    let answer = exchange(&emulator, &Spec::new(emulator.config(), 0).token()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
}

#[tokio::test]
async fn unsigned_target_and_https_prefix_are_accepted() {
    let emulator = start(config()).await;
    let mut spec = Spec::new(emulator.config(), 1);
    spec.sign_target = false;
    let answer = exchange(&emulator, &spec.token()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);

    spec.target = format!("https:{}", emulator.config().audience());
    let answer = exchange(&emulator, &spec.token()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
}

#[tokio::test]
async fn google_auth_and_botocore_tokens_verify() {
    let mut config = third_party_config();
    config.now = Some(datetime!(2025-06-01 12:10:00 UTC));
    let emulator = start(config).await;
    let answer = exchange(&emulator, GOOGLE_AUTH_TOKEN).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);

    emulator.set_now(Some(datetime!(2026-11-26 06:30:00 UTC)));
    let answer = exchange(&emulator, BOTOCORE_TOKEN).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);

    // The same tokens, one signed byte changed, must fail: the check is not vacuous.
    let tampered = BOTOCORE_TOKEN.replace("Signature%3De3f2", "Signature%3De3f3");
    assert_sts_error(
        &exchange(&emulator, &tampered).await,
        "invalid_grant",
        SIGNATURE_DOES_NOT_MATCH,
    );
    emulator.set_now(Some(datetime!(2025-06-01 12:10:00 UTC)));
    let tampered = GOOGLE_AUTH_TOKEN.replace("EXAMPLE%2Bsession", "EXAMPLE%2BsessioN");
    assert_sts_error(
        &exchange(&emulator, &tampered).await,
        "invalid_grant",
        INVALID_CLIENT_TOKEN_ID,
    );
}

#[tokio::test]
async fn tampering_breaks_the_signature() {
    let emulator = start(config()).await;
    let token = Spec::new(emulator.config(), 1).token();
    let signature_flipped = edit(&token, |request| {
        for header in request["headers"].as_array_mut().unwrap() {
            if header["key"] == "authorization" {
                let value = header["value"].as_str().unwrap();
                let last = value.chars().last().unwrap();
                let flipped = if last == '0' { '1' } else { '0' };
                header["value"] = json!(format!("{}{flipped}", &value[..value.len() - 1]));
            }
        }
    });
    let one_second_later = edit(&token, |r| set_header(r, "x-amz-date", "20250601T120001Z"));
    let wrong_secret = {
        let mut spec = Spec::new(emulator.config(), 1);
        spec.identity.secret_access_key = "not-the-secret".into();
        spec.token()
    };
    let other_query = edit(&token, |r| {
        r["url"] = json!(
            "https://sts.eu-west-1.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15&x=1"
        )
    });
    for tampered in [
        signature_flipped,
        one_second_later,
        wrong_secret,
        other_query,
    ] {
        assert_sts_error(
            &exchange(&emulator, &tampered).await,
            "invalid_grant",
            SIGNATURE_DOES_NOT_MATCH,
        );
    }
}

#[tokio::test]
async fn a_signed_target_header_is_covered_by_the_signature() {
    let mut config = config();
    config.pool_id = "other-pool".into();
    let emulator = start(config).await;
    // Signed for the demo pool, then relabelled for this one: the signature no longer matches.
    let token = Spec::new(&EmulatorConfig::demo(), 0).token();
    let relabelled = edit(&token, |r| {
        set_header(
            r,
            "x-goog-cloud-target-resource",
            &emulator.config().audience(),
        )
    });
    assert_sts_error(
        &exchange(&emulator, &relabelled).await,
        "invalid_grant",
        SIGNATURE_DOES_NOT_MATCH,
    );
}

#[tokio::test]
async fn unknown_keys_and_wrong_session_tokens_are_invalid_client_token_ids() {
    let emulator = start(config()).await;
    let mut unknown = Spec::new(emulator.config(), 0);
    unknown.identity.access_key_id = "AKIAUNKNOWNKEY000000".into();
    let mut wrong_session = Spec::new(emulator.config(), 1);
    wrong_session.identity.session_token = Some("another-session".into());
    let mut no_session = Spec::new(emulator.config(), 1);
    no_session.identity.session_token = None;
    for spec in [unknown, wrong_session, no_session] {
        assert_sts_error(
            &exchange(&emulator, &spec.token()).await,
            "invalid_grant",
            INVALID_CLIENT_TOKEN_ID,
        );
    }
}

#[tokio::test]
async fn wrong_or_missing_target_resource_is_invalid_grant() {
    let emulator = start(config()).await;
    let audience = emulator.config().audience();
    let mut spec = Spec::new(emulator.config(), 0);
    spec.target = audience.replace("aws-partner", "someone-else");
    let answer = exchange(&emulator, &spec.token()).await;
    assert_sts_error_starts(&answer, "invalid_grant", "The target resource ");
    let description = answer.json["error_description"].as_str().unwrap();
    assert!(
        description.ends_with(&format!("does not match the audience \"{audience}\".")),
        "{description}"
    );

    let missing = edit(&Spec::new(emulator.config(), 0).token(), |r| {
        remove_header(r, "x-goog-cloud-target-resource")
    });
    assert_sts_error_starts(
        &exchange(&emulator, &missing).await,
        "invalid_grant",
        "The subject token has no x-goog-cloud-target-resource header",
    );
}

#[tokio::test]
async fn clock_skew_beyond_fifteen_minutes_is_refused() {
    let emulator = start(config()).await;
    let mut spec = Spec::new(emulator.config(), 0);
    spec.time = NOW - Duration::from_secs(20 * 60);
    assert_sts_error(
        &exchange(&emulator, &spec.token()).await,
        "invalid_grant",
        "Received invalid AWS response of type SignatureDoesNotMatch with error message: \
         Signature expired: 20250601T114000Z is now earlier than 20250601T114500Z \
         (20250601T120000Z - 15 min.)",
    );
    spec.time = NOW + Duration::from_secs(20 * 60);
    assert_sts_error(
        &exchange(&emulator, &spec.token()).await,
        "invalid_grant",
        "Received invalid AWS response of type SignatureDoesNotMatch with error message: \
         Signature not yet current: 20250601T122000Z is still later than 20250601T121500Z \
         (20250601T120000Z + 15 min.)",
    );
    spec.time = NOW - Duration::from_secs(14 * 60);
    assert_eq!(
        exchange(&emulator, &spec.token()).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn credential_scope_must_match_the_url() {
    let emulator = start(config()).await;
    let token = Spec::new(emulator.config(), 0).token();
    let other_region = edit(&token, |r| {
        r["url"] = json!(
            "https://sts.us-west-2.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
        );
        set_header(r, "host", "sts.us-west-2.amazonaws.com");
    });
    assert_sts_error(
        &exchange(&emulator, &other_region).await,
        "invalid_grant",
        "Received invalid AWS response of type SignatureDoesNotMatch with error message: \
         Credential should be scoped to a valid region.",
    );
    let not_sts = edit(&token, |r| {
        r["url"] = json!("https://s3.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15")
    });
    assert_sts_error_starts(
        &exchange(&emulator, &not_sts).await,
        "invalid_grant",
        "AWS request has invalid format",
    );
}

#[tokio::test]
async fn incomplete_signatures_get_aws_words() {
    let emulator = start(config()).await;
    let token = Spec::new(emulator.config(), 0).token();
    let aws = |code: &str, message: &str| {
        format!("Received invalid AWS response of type {code} with error message: {message}")
    };
    let rewrite_authorization = |from: &str, to: &str| {
        edit(&token, |r| {
            for header in r["headers"].as_array_mut().unwrap() {
                if header["key"] == "authorization" {
                    header["value"] = json!(header["value"].as_str().unwrap().replace(from, to));
                }
            }
        })
    };
    let cases = [
        (
            edit(&token, |r| remove_header(r, "authorization")),
            aws(
                "MissingAuthenticationToken",
                "Request is missing Authentication Token",
            ),
        ),
        (
            edit(&token, |r| remove_header(r, "x-amz-date")),
            aws(
                "IncompleteSignature",
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
            ),
        ),
        (
            rewrite_authorization(", Signature=", ", Sig="),
            aws(
                "IncompleteSignature",
                "Authorization header requires 'Signature' parameter.",
            ),
        ),
        (
            rewrite_authorization("/20250601/", "/20250602/"),
            aws(
                "SignatureDoesNotMatch",
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '20250602' != '20250601', from '20250601T120000Z'.",
            ),
        ),
        (
            rewrite_authorization("/sts/aws4_request", "/s3/aws4_request"),
            aws(
                "SignatureDoesNotMatch",
                "Credential should be scoped to correct service: 'sts'.",
            ),
        ),
    ];
    for (token, description) in cases {
        assert_sts_error(
            &exchange(&emulator, &token).await,
            "invalid_grant",
            &description,
        );
    }
}
