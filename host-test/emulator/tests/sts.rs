//! Google STS over HTTP: the token exchange end to end, its form fields, the audience and the
//! provider's attribute condition.

mod common;

use std::time::Duration;

use http::StatusCode;
use wif_push_emulator::Misconfig;

use common::tokens::*;
use common::*;

#[tokio::test]
async fn whole_flow_with_signed_target_and_session_token() {
    let emulator = start(config()).await;
    let answer = exchange(&emulator, &Spec::new(emulator.config(), 1).token()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(
        answer.headers["content-type"],
        "application/json; charset=UTF-8"
    );
    let federated = answer.json["access_token"].as_str().unwrap();
    assert!(federated.starts_with("ya29.d."), "{federated}");
    assert_eq!(
        answer.json["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(answer.json["token_type"], "Bearer");
    assert_eq!(answer.json["expires_in"], 3599);

    let answer = generate(&emulator, Some(federated), SA, storage_request()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["expireTime"], "2025-06-01T13:00:00Z");
    let access_token = answer.json["accessToken"].as_str().unwrap();
    assert!(access_token.starts_with("ya29.c."), "{access_token}");
    assert!(emulator.access_token_valid(access_token));
    assert!(!emulator.access_token_valid(federated));
    assert!(!emulator.access_token_valid("ya29.c.forged"));

    emulator.set_now(Some(NOW + Duration::from_secs(3600)));
    assert!(!emulator.access_token_valid(access_token));
}

#[tokio::test]
async fn audience_misconfigurations() {
    let mut config = config();
    config.misconfig = vec![Misconfig::UnknownAudience];
    let emulator = start(config).await;
    let invalid_target = "The target service indicated by the \"audience\" parameters is invalid. \
        This might either be because the pool or provider is disabled or deleted or because it \
        doesn't exist.";
    let token = Spec::new(emulator.config(), 0).token();
    assert_sts_error(
        &exchange(&emulator, &token).await,
        "invalid_target",
        invalid_target,
    );

    let emulator = start(self::config()).await;
    let other_provider = emulator
        .config()
        .audience()
        .replace("/providers/aws", "/providers/gone");
    assert_sts_error(
        &exchange_with_audience(&emulator, &token, &other_provider).await,
        "invalid_target",
        invalid_target,
    );
    assert_sts_error_starts(
        &exchange_with_audience(&emulator, &token, "projects/123/providers/aws").await,
        "invalid_request",
        "Invalid value for \"audience\".",
    );
}

#[tokio::test]
async fn attribute_condition_rejections() {
    let words = "The given credential is rejected by the attribute condition.";
    let mut config = config();
    config.misconfig = vec![Misconfig::ConditionRejects];
    let emulator = start(config).await;
    let token = Spec::new(emulator.config(), 0).token();
    assert_sts_error(
        &exchange(&emulator, &token).await,
        "unauthorized_client",
        words,
    );

    let mut config = self::config();
    config.allowed_role_arn_prefixes = vec!["arn:aws:sts::111122223333:assumed-role/other/".into()];
    let emulator = start(config).await;
    assert_sts_error(
        &exchange(&emulator, &token).await,
        "unauthorized_client",
        words,
    );
}

#[tokio::test]
async fn form_fields_are_checked_and_named() {
    let emulator = start(config()).await;
    let token = Spec::new(emulator.config(), 0).token();
    let audience = emulator.config().audience();
    let full = [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("audience", audience.as_str()),
        ("scope", "https://www.googleapis.com/auth/cloud-platform"),
        (
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
        (
            "subject_token_type",
            "urn:ietf:params:aws:token-type:aws4_request",
        ),
        ("subject_token", token.as_str()),
    ];
    for (i, (name, _)) in full.iter().enumerate() {
        let mut pairs = full.to_vec();
        pairs.remove(i);
        assert_sts_error(
            &sts_form(&emulator, form(&pairs)).await,
            "invalid_request",
            &format!("Missing required parameter: \"{name}\"."),
        );
    }
    let mut pairs = full.to_vec();
    pairs[4].1 = "urn:ietf:params:oauth:token-type:jwt";
    assert_sts_error_starts(
        &sts_form(&emulator, form(&pairs)).await,
        "invalid_request",
        "Invalid value for \"subject_token_type\".",
    );
    assert_eq!(
        sts_form(&emulator, form(&full)).await.status,
        StatusCode::OK
    );

    for garbage in [
        "",
        "not a token",
        "%7B%22url%22%3A1%7D",
        "%FF",
        "{\"url\": []}",
    ] {
        let mut pairs = full.to_vec();
        pairs[5].1 = if garbage.is_empty() { " " } else { garbage };
        assert_sts_error_starts(
            &sts_form(&emulator, form(&pairs)).await,
            "invalid_grant",
            "AWS request has invalid format: the subject token is not a valid serialized AWS \
             GetCallerIdentity request",
        );
    }
}
