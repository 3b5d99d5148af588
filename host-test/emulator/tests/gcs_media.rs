//! Cloud Storage's `uploadType=media`: the body is the object, named and typed by the request.

mod common;

use http::Method;
use wif_push_emulator::EmulatorConfig;

use common::gcs::*;
use common::*;

#[tokio::test]
async fn media_upload_takes_name_and_type_from_the_request() {
    let emulator = start(EmulatorConfig::demo()).await;
    let bearer = format!("Bearer {}", emulator.issue_access_token_for_tests());
    let data = pattern(0..5000);
    let (crc32c, md5, sha256) = hashes(&data);
    let goog_hash = format!("crc32c={crc32c},md5={md5}");
    let answer = send(
        &emulator,
        Method::POST,
        &upload_path("media", "plain.bin", Some("0")),
        &[
            ("authorization", &bearer),
            ("content-type", "application/x-plain"),
            ("x-goog-hash", &goog_hash),
        ],
        bytes(data.clone()),
    )
    .await;
    answer.expect(200);
    assert_eq!(answer.json()["contentType"], "application/x-plain");
    assert_eq!(answer.json()["crc32c"], crc32c);
    assert_eq!(emulator.object("plain.bin").unwrap().sha256_hex, sha256);

    let answer = send(
        &emulator,
        Method::POST,
        &upload_path("media", "bad.bin", Some("0")),
        &[
            ("authorization", &bearer),
            ("x-goog-hash", &format!("crc32c=AAAAAA==,md5={md5}")),
        ],
        bytes(data),
    )
    .await;
    assert_gcs_error(
        &answer,
        400,
        "invalid",
        &format!("Provided CRC32C \"AAAAAA==\" doesn't match calculated CRC32C \"{crc32c}\"."),
    );
    assert!(emulator.object("bad.bin").is_none());
}
