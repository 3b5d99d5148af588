//! IAM Credentials over HTTP: `generateAccessToken` needs a live federated token with a scope
//! that reaches IAM, a service account the pool may impersonate, and a lifetime within bounds.

mod common;

use std::time::Duration;

use http::StatusCode;
use serde_json::json;
use wif_push_emulator::Misconfig;

use common::tokens::*;
use common::*;

#[tokio::test]
async fn service_account_misconfigurations() {
    let cases = [
        (
            Misconfig::MissingWorkloadIdentityUser,
            403,
            "PERMISSION_DENIED",
            "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
        ),
        (
            Misconfig::ServiceAccountMissing,
            404,
            "NOT_FOUND",
            "Not found; Gaia id not found for email uploader@partner-project.iam.gserviceaccount.com",
        ),
        (
            Misconfig::ServiceAccountDisabled,
            400,
            "FAILED_PRECONDITION",
            "Service account uploader@partner-project.iam.gserviceaccount.com is disabled.",
        ),
    ];
    for (misconfig, code, status, message) in cases {
        let mut config = config();
        config.misconfig = vec![misconfig];
        let emulator = start(config).await;
        let federated = federated_token(&emulator).await;
        let answer = generate(&emulator, Some(&federated), SA, storage_request()).await;
        assert_google_error(&answer, code, status, message);
        if misconfig == Misconfig::MissingWorkloadIdentityUser {
            assert_eq!(
                answer.json["error"]["details"],
                json!([{
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "IAM_PERMISSION_DENIED",
                    "domain": "iam.googleapis.com",
                    "metadata": {"permission": "iam.serviceAccounts.getAccessToken"},
                }])
            );
        }
    }

    let emulator = start(config()).await;
    let federated = federated_token(&emulator).await;
    let other = "someone@partner-project.iam.gserviceaccount.com";
    assert_google_error(
        &generate(&emulator, Some(&federated), other, storage_request()).await,
        404,
        "NOT_FOUND",
        &format!("Not found; Gaia id not found for email {other}"),
    );
}

#[tokio::test]
async fn iam_needs_a_live_federated_token() {
    let emulator = start(config()).await;
    let missing = generate(&emulator, None, SA, storage_request()).await;
    assert_google_error(
        &missing,
        401,
        "UNAUTHENTICATED",
        "Request is missing required authentication credential. Expected OAuth 2 access token, \
         login cookie or other valid authentication credential. See \
         https://developers.google.com/identity/sign-in/web/devconsole-project.",
    );
    assert_eq!(
        missing.headers["www-authenticate"],
        "Bearer realm=\"https://accounts.google.com/\""
    );
    let invalid = "Request had invalid authentication credentials. Expected OAuth 2 access \
        token, login cookie or other valid authentication credential. See \
        https://developers.google.com/identity/sign-in/web/devconsole-project.";
    assert_google_error(
        &generate(&emulator, Some("ya29.bogus"), SA, storage_request()).await,
        401,
        "UNAUTHENTICATED",
        invalid,
    );

    // An access token issued by IAM is not a federated token.
    let federated = federated_token(&emulator).await;
    let answer = generate(&emulator, Some(&federated), SA, storage_request()).await;
    let access_token = answer.json["accessToken"].as_str().unwrap();
    assert_google_error(
        &generate(&emulator, Some(access_token), SA, storage_request()).await,
        401,
        "UNAUTHENTICATED",
        invalid,
    );

    emulator.set_now(Some(NOW + Duration::from_secs(3600)));
    let expired = generate(&emulator, Some(&federated), SA, storage_request()).await;
    assert_google_error(&expired, 401, "UNAUTHENTICATED", invalid);
    assert_eq!(
        expired.json["error"]["details"][0]["reason"],
        "ACCESS_TOKEN_EXPIRED"
    );
}

#[tokio::test]
async fn federated_token_scope_must_reach_iam() {
    let emulator = start(config()).await;
    let token = Spec::new(emulator.config(), 0).token();
    let audience = emulator.config().audience();
    let answer = sts_form(
        &emulator,
        form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("audience", &audience),
            ("scope", STORAGE_SCOPE),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            (
                "subject_token_type",
                "urn:ietf:params:aws:token-type:aws4_request",
            ),
            ("subject_token", &token),
        ]),
    )
    .await;
    let federated = answer.json["access_token"].as_str().unwrap();
    assert_google_error(
        &generate(&emulator, Some(federated), SA, storage_request()).await,
        403,
        "PERMISSION_DENIED",
        "Request had insufficient authentication scopes.",
    );
}

#[tokio::test]
async fn lifetimes_and_scopes() {
    let emulator = start(config()).await;
    let federated = federated_token(&emulator).await;
    assert_google_error(
        &generate(
            &emulator,
            Some(&federated),
            SA,
            json!({"scope": [STORAGE_SCOPE], "lifetime": "7200s"}),
        )
        .await,
        400,
        "INVALID_ARGUMENT",
        "The lifetime 7200s exceeds the maximum allowed lifetime of 3600s. Set the organization \
         policy constraints/iam.allowServiceAccountCredentialLifetimeExtension to extend it.",
    );
    assert_google_error(
        &generate(&emulator, Some(&federated), SA, json!({"lifetime": "600s"})).await,
        400,
        "INVALID_ARGUMENT",
        "Scope required.",
    );
    let answer = generate(
        &emulator,
        Some(&federated),
        SA,
        json!({"scope": [STORAGE_SCOPE]}),
    )
    .await;
    assert_eq!(answer.json["expireTime"], "2025-06-01T13:00:00Z");
    let answer = generate(
        &emulator,
        Some(&federated),
        SA,
        json!({"scope": [STORAGE_SCOPE], "lifetime": "600s"}),
    )
    .await;
    assert_eq!(answer.json["expireTime"], "2025-06-01T12:10:00Z");

    let mut config = config();
    config.max_lifetime_seconds = 43_200;
    let emulator = start(config).await;
    let federated = federated_token(&emulator).await;
    let answer = generate(
        &emulator,
        Some(&federated),
        SA,
        json!({"scope": [STORAGE_SCOPE], "lifetime": "43200s"}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["expireTime"], "2025-06-02T00:00:00Z");
}
