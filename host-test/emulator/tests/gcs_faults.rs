//! The faults Cloud Storage requests meet on purpose, scripted or random, for delivery tests.

mod common;

use std::time::{Duration, Instant};

use serde_json::json;
use wif_push_emulator::{EmulatorConfig, Fault, FaultPlan};

use common::gcs::*;
use common::*;

#[tokio::test]
async fn status_faults_answer_without_doing_anything_in_order() {
    let mut config = EmulatorConfig::demo();
    config.faults = FaultPlan::scripted([Fault::Status(503), Fault::Status(429)]);
    let emulator = start(config).await;
    let token = emulator.issue_access_token_for_tests();
    let answer = try_multipart(&emulator, &token, "f", b"x").await.unwrap();
    assert_gcs_error(&answer, 503, "backendError", "Service Unavailable");
    let answer = try_multipart(&emulator, &token, "f", b"x").await.unwrap();
    answer.expect(429);
    assert_eq!(
        answer.json()["error"]["errors"][0]["reason"],
        "rateLimitExceeded"
    );
    assert!(emulator.object("f").is_none());
    try_multipart(&emulator, &token, "f", b"x")
        .await
        .unwrap()
        .expect(200);
    let faults: Vec<Option<Fault>> = gcs_entries(&emulator)
        .into_iter()
        .map(|e| e.gcs.unwrap().fault)
        .collect();
    assert_eq!(
        faults,
        [Some(Fault::Status(503)), Some(Fault::Status(429)), None]
    );

    // Changed at runtime; a status fault on a chunk commits nothing.
    let session = start_session(&emulator, &token, "g", json!({})).await;
    emulator.set_faults(FaultPlan::scripted([Fault::Status(500)]));
    chunk(&emulator, &session, 0..KIB256, "*", &[])
        .await
        .expect(500);
    assert_incomplete(&status_query(&emulator, &session, "*").await, 0);
}

#[tokio::test]
async fn reset_mid_body_of_a_multipart_upload_creates_nothing() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    emulator.set_faults(FaultPlan::scripted([Fault::ResetMidBody {
        after_bytes: 100_000,
    }]));
    let data = pattern(0..300_000);
    let result = try_multipart(&emulator, &token, "cut", &data).await;
    assert!(result.is_err(), "{result:?}");
    let entries = wait_for_gcs_log(&emulator, 1).await;
    assert_eq!(entries[0].status, 0);
    assert_eq!(entries[0].gcs.as_ref().unwrap().bytes_received, 100_000);
    assert!(emulator.object("cut").is_none());
    assert_eq!(staged_files(&emulator), 0);
    // Also when the cut falls after the whole body: nothing is created.
    emulator.set_faults(FaultPlan::scripted([Fault::ResetMidBody {
        after_bytes: 10_000_000,
    }]));
    assert!(
        try_multipart(&emulator, &token, "cut", &data)
            .await
            .is_err()
    );
    assert!(emulator.object("cut").is_none());
    try_multipart(&emulator, &token, "cut", &data)
        .await
        .unwrap()
        .expect(200);
}

#[tokio::test]
async fn reset_mid_chunk_commits_whole_256_kib_units_and_the_upload_resumes() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    let total = 4 * KIB256 + 123;
    let session = start_session(&emulator, &token, "resumed", json!({})).await;
    emulator.set_faults(FaultPlan::scripted([Fault::ResetMidBody {
        after_bytes: 2 * KIB256 + 5000,
    }]));
    let cut = try_chunk(&emulator, &session, 0..4 * KIB256, "*", &[]).await;
    assert!(cut.is_err(), "{cut:?}");
    assert_incomplete(&status_query(&emulator, &session, "*").await, 2 * KIB256);
    chunk(
        &emulator,
        &session,
        2 * KIB256..total,
        &total.to_string(),
        &[],
    )
    .await
    .expect(200);
    let stored = emulator.object("resumed").unwrap();
    assert_eq!(stored.sha256_hex, hashes(&pattern(0..total)).2);
    let entries = gcs_entries(&emulator);
    let resent: u64 = entries
        .iter()
        .map(|e| e.gcs.as_ref().unwrap().bytes_resent)
        .sum();
    assert_eq!(resent, 0, "committed bytes were not sent again");
    assert_eq!(
        entries[1].gcs.as_ref().unwrap().bytes_received,
        2 * KIB256 + 5000
    );
}

#[tokio::test]
async fn lost_answers_after_commit() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();

    // Multipart: the object exists; the retry with ifGenerationMatch=0 answers 412.
    emulator.set_faults(FaultPlan::scripted([Fault::LoseResponseAfterCommit]));
    let lost = try_multipart(&emulator, &token, "landed", b"payload").await;
    assert!(lost.is_err(), "{lost:?}");
    assert_eq!(emulator.object("landed").unwrap().size, 7);
    try_multipart(&emulator, &token, "landed", b"payload")
        .await
        .unwrap()
        .expect(412);

    // Resumable: the status query reveals the finished object.
    let total = KIB256 + 1;
    let session = start_session(&emulator, &token, "landed-2", json!({})).await;
    chunk(&emulator, &session, 0..KIB256, "*", &[])
        .await
        .expect(308);
    emulator.set_faults(FaultPlan::scripted([Fault::LoseResponseAfterCommit]));
    let lost = try_chunk(&emulator, &session, KIB256..total, &total.to_string(), &[]).await;
    assert!(lost.is_err(), "{lost:?}");
    let answer = status_query(&emulator, &session, &total.to_string()).await;
    answer.expect(200);
    assert_eq!(answer.json()["size"], total.to_string());
    assert_eq!(answer.json()["crc32c"], hashes(&pattern(0..total)).0);

    // A lost 308: the chunk is committed, and the client learns it by asking.
    let session = start_session(&emulator, &token, "landed-3", json!({})).await;
    emulator.set_faults(FaultPlan::scripted([Fault::LoseResponseAfterCommit]));
    assert!(
        try_chunk(&emulator, &session, 0..KIB256, "*", &[])
            .await
            .is_err()
    );
    assert_incomplete(&status_query(&emulator, &session, "*").await, KIB256);
}

#[tokio::test]
async fn slow_answers_come_late() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    emulator.set_faults(FaultPlan::scripted([Fault::Slow(Duration::from_millis(
        300,
    ))]));
    let started = Instant::now();
    try_multipart(&emulator, &token, "slow", b"x")
        .await
        .unwrap()
        .expect(200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let started = Instant::now();
    try_multipart(&emulator, &token, "fast", b"x")
        .await
        .unwrap()
        .expect(200);
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn random_faults_are_reproducible_and_never_corrupt() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    // Names of equal length per run, so bodies (and random cut points) are alike.
    let run = |seed: u64, tag: char| {
        let emulator = &emulator;
        let token = &token;
        async move {
            emulator.set_faults(FaultPlan::random(seed, 0.5));
            let mut outcomes = Vec::new();
            for i in 0..40 {
                let name = format!("{tag}-{i:02}");
                let data = pattern(i..i + 2000);
                let outcome = match try_multipart(emulator, token, &name, &data).await {
                    Ok(answer) => answer.status.as_u16(),
                    Err(_) => 0,
                };
                // Whatever happened, an object that exists has exactly the bytes sent.
                if let Some(stored) = emulator.object(&name) {
                    assert_eq!(stored.sha256_hex, hashes(&data).2);
                }
                outcomes.push((outcome, emulator.object(&name).is_some()));
            }
            outcomes
        }
    };
    let first = run(42, 'a').await;
    assert_eq!(first.len(), 40);
    for status in [200, 503, 429, 0] {
        assert!(
            first.iter().any(|(s, _)| *s == status),
            "{status}: {first:?}"
        );
    }
    // A lost answer after commit: no status, but the object is there.
    assert!(first.contains(&(0, true)), "{first:?}");
    assert!(first.contains(&(0, false)), "{first:?}");
    let faults: Vec<Option<Fault>> = gcs_entries(&emulator)
        .into_iter()
        .map(|e| e.gcs.unwrap().fault)
        .collect();
    let second: Vec<(u16, bool)> = run(42, 'b').await;
    assert_eq!(first, second);
    let again: Vec<Option<Fault>> = gcs_entries(&emulator)[40..]
        .iter()
        .map(|e| e.gcs.clone().unwrap().fault)
        .collect();
    assert_eq!(faults, again);
}
