//! What an identity with only `roles/storage.objectCreator` meets at Cloud Storage: no overwrite
//! (412 with `ifGenerationMatch=0`, 403 without), no read, tokens and the bucket checked, and
//! tokens from the real path (STS, then IAM Credentials) whose scope matters.

mod common;

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;
use time::OffsetDateTime;
use wif_push_emulator::{Emulator, EmulatorConfig, Endpoint};

use common::gcs::*;
use common::tokens;
use common::*;

/// An access token with `scope` by the real path: a subject token signed now by aws-sigv4, the
/// STS exchange, then IAM Credentials.
async fn access_token_via_sts_and_iam(emulator: &Emulator, scope: &str) -> String {
    let mut spec = tokens::Spec::new(emulator.config(), 0);
    spec.region = "us-east-1";
    spec.time = OffsetDateTime::now_utc();
    let answer = tokens::exchange(emulator, &spec.token()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    let federated = answer.json["access_token"].as_str().unwrap();
    let answer = tokens::generate(emulator, Some(federated), SA, json!({"scope": [scope]})).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    answer.json["accessToken"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn existing_names_answer_412_with_if_generation_match_0_and_403_without() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    let first = try_multipart(&emulator, &token, "once", b"first")
        .await
        .unwrap();
    first.expect(200);
    let generation = first.json()["generation"].as_str().unwrap().to_owned();

    let again = try_multipart(&emulator, &token, "once", b"second")
        .await
        .unwrap();
    again.expect(412);
    assert_eq!(
        again.json(),
        json!({"error": {"code": 412,
            "message": "At least one of the pre-conditions you specified did not hold.",
            "errors": [{"message": "At least one of the pre-conditions you specified did not hold.",
                "domain": "global", "reason": "conditionNotMet",
                "locationType": "header", "location": "If-Match"}]}})
    );

    let overwrite = format!(
        "{SA} does not have storage.objects.delete access to the Google Cloud Storage object. \
         Permission 'storage.objects.delete' denied on resource (or it may not exist)."
    );
    for precondition in [None, Some(generation.as_str())] {
        let answer = multipart_with(
            &emulator,
            &token,
            &upload_path("multipart", "once", precondition),
            &json!({}),
            b"third",
        )
        .await
        .unwrap();
        assert_gcs_error(&answer, 403, "forbidden", &overwrite);
    }
    let answer = multipart_with(
        &emulator,
        &token,
        &upload_path("multipart", "once", Some("12345")),
        &json!({}),
        b"third",
    )
    .await
    .unwrap();
    answer.expect(412);
    let answer = multipart_with(
        &emulator,
        &token,
        &upload_path("multipart", "never", Some("12345")),
        &json!({}),
        b"x",
    )
    .await
    .unwrap();
    answer.expect(412);

    // A resumable session for an existing name fails at its start.
    let bearer = format!("Bearer {token}");
    let answer = send(
        &emulator,
        Method::POST,
        &upload_path("resumable", "once", Some("0")),
        &[("authorization", &bearer)],
        bytes("{}"),
    )
    .await;
    answer.expect(412);
    assert!(answer.header("location").is_none());

    // Still the first bytes.
    let stored = emulator.object("once").unwrap();
    assert_eq!(std::fs::read(stored.path.unwrap()).unwrap(), b"first");
    assert_eq!(emulator.objects().len(), 1);
    assert_eq!(staged_files(&emulator), 0);
}

#[tokio::test]
async fn concurrent_uploads_of_one_name_create_it_once() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    let data = pattern(0..200_000);
    let answers = tokio::join!(
        try_multipart(&emulator, &token, "race", &data),
        try_multipart(&emulator, &token, "race", &data),
    );
    let mut statuses = [
        answers.0.unwrap().status.as_u16(),
        answers.1.unwrap().status.as_u16(),
    ];
    statuses.sort();
    assert_eq!(statuses, [200, 412]);
}

#[tokio::test]
async fn generations_are_unique_and_increasing_even_with_a_frozen_clock() {
    let mut config = EmulatorConfig::demo();
    config.now = Some(time::macros::datetime!(2025-06-01 12:00:00 UTC));
    let emulator = start(config).await;
    let token = emulator.issue_access_token_for_tests();
    let mut generations = Vec::new();
    for name in ["a", "b", "c"] {
        try_multipart(&emulator, &token, name, b"x")
            .await
            .unwrap()
            .expect(200);
        generations.push(emulator.object(name).unwrap().generation);
    }
    assert_eq!(generations[0], 1_748_779_200_000_000);
    assert_eq!(generations[1], generations[0] + 1);
    assert_eq!(generations[2], generations[0] + 2);
}

#[tokio::test]
async fn reads_are_denied_to_an_object_creator() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    try_multipart(&emulator, &token, "secret.txt", b"x")
        .await
        .unwrap()
        .expect(200);
    let bearer = format!("Bearer {token}");
    let denied = |permission: &str, kind: &str| {
        format!(
            "{SA} does not have {permission} access to the Google Cloud Storage {kind}. \
             Permission '{permission}' denied on resource (or it may not exist)."
        )
    };
    for (method, path, permission, kind) in [
        (
            Method::GET,
            "/storage/v1/b/partner-inbox/o/secret.txt",
            "storage.objects.get",
            "object",
        ),
        (
            Method::GET,
            "/storage/v1/b/partner-inbox/o/secret.txt?alt=media",
            "storage.objects.get",
            "object",
        ),
        (
            Method::GET,
            "/download/storage/v1/b/partner-inbox/o/secret.txt?alt=media",
            "storage.objects.get",
            "object",
        ),
        (
            Method::GET,
            "/storage/v1/b/partner-inbox/o/missing",
            "storage.objects.get",
            "object",
        ),
        (
            Method::GET,
            "/storage/v1/b/partner-inbox/o?prefix=s",
            "storage.objects.list",
            "bucket",
        ),
        (
            Method::GET,
            "/storage/v1/b/partner-inbox",
            "storage.buckets.get",
            "bucket",
        ),
        (
            Method::DELETE,
            "/storage/v1/b/partner-inbox/o/secret.txt",
            "storage.objects.delete",
            "object",
        ),
        (
            Method::PATCH,
            "/storage/v1/b/partner-inbox/o/secret.txt",
            "storage.objects.update",
            "object",
        ),
    ] {
        let answer = send(
            &emulator,
            method,
            path,
            &[("authorization", &bearer)],
            bytes(""),
        )
        .await;
        assert_gcs_error(&answer, 403, "forbidden", &denied(permission, kind));
    }
    assert!(emulator.object("secret.txt").is_some());
}

#[tokio::test]
async fn credentials_and_bucket_are_checked() {
    let emulator = start(EmulatorConfig::demo()).await;
    let path = upload_path("multipart", "x", Some("0"));

    let invalid = json!({"error": {"code": 401, "message": "Invalid Credentials",
        "errors": [{"message": "Invalid Credentials", "domain": "global", "reason": "authError",
            "locationType": "header", "location": "Authorization"}]}});
    let answer = multipart_with(&emulator, "ya29.c.forged", &path, &json!({}), b"x")
        .await
        .unwrap();
    answer.expect(401);
    assert_eq!(answer.json(), invalid);
    let answer = send(
        &emulator,
        Method::GET,
        "/storage/v1/b/partner-inbox/o/x",
        &[("authorization", "Bearer nope")],
        bytes(""),
    )
    .await;
    assert_eq!(answer.json(), invalid);

    let answer = send(&emulator, Method::POST, &path, &[], bytes("")).await;
    assert_gcs_error(
        &answer,
        401,
        "required",
        "Anonymous caller does not have storage.objects.create access to the Google Cloud \
         Storage object. Permission 'storage.objects.create' denied on resource (or it may not \
         exist).",
    );

    // Expired: the emulator's clock moves past the token's hour.
    let token = emulator.issue_access_token_for_tests();
    emulator.set_now(Some(
        time::OffsetDateTime::now_utc() + Duration::from_secs(3601),
    ));
    let answer = try_multipart(&emulator, &token, "x", b"x").await.unwrap();
    answer.expect(401);
    assert_eq!(answer.json(), invalid);
    emulator.set_now(None);

    let token = emulator.issue_access_token_for_tests();
    let answer = multipart_with(
        &emulator,
        &token,
        "/upload/storage/v1/b/someone-elses-bucket/o?uploadType=multipart&name=x",
        &json!({}),
        b"x",
    )
    .await
    .unwrap();
    assert_gcs_error(
        &answer,
        404,
        "notFound",
        "The specified bucket does not exist.",
    );

    let bearer = format!("Bearer {token}");
    let answer = send(
        &emulator,
        Method::POST,
        "/storage/v1/b/partner-inbox/o?name=x",
        &[("authorization", &bearer)],
        bytes("{}"),
    )
    .await;
    assert_gcs_error(
        &answer,
        400,
        "wrongUrlForUpload",
        "Upload requests must include an uploadType URL parameter and a URL path beginning \
         with /upload/",
    );
    assert!(emulator.objects().is_empty());
    let statuses: Vec<u16> = gcs_entries(&emulator).iter().map(|e| e.status).collect();
    assert_eq!(statuses, [401, 401, 401, 401, 404, 400]);
}

#[tokio::test]
async fn tokens_from_sts_and_iam_upload_and_their_scope_matters() {
    let emulator = start(EmulatorConfig::demo()).await;
    let read_write = access_token_via_sts_and_iam(
        &emulator,
        "https://www.googleapis.com/auth/devstorage.read_write",
    )
    .await;
    try_multipart(&emulator, &read_write, "via-iam", b"x")
        .await
        .unwrap()
        .expect(200);

    let read_only = access_token_via_sts_and_iam(
        &emulator,
        "https://www.googleapis.com/auth/devstorage.read_only",
    )
    .await;
    let answer = try_multipart(&emulator, &read_only, "read-only", b"x")
        .await
        .unwrap();
    assert_gcs_error(
        &answer,
        403,
        "forbidden",
        "Provided scope(s) are not authorized",
    );
    assert!(emulator.object("read-only").is_none());
    assert_eq!(emulator.count(Endpoint::Sts), 2);
    assert_eq!(emulator.count(Endpoint::Iam), 2);
    assert_eq!(emulator.count(Endpoint::Gcs), 2);
}
