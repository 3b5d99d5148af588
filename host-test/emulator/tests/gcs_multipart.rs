//! Cloud Storage's `uploadType=multipart`: checksums the object gets and those it is declared
//! with, binary media, and malformed `multipart/related` bodies.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::Method;
use serde_json::json;
use wif_push_emulator::{EmulatorConfig, Endpoint};

use common::gcs::*;
use common::*;

#[tokio::test]
async fn multipart_upload_creates_the_object_with_gcs_checksums() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    let metadata = json!({
        "name": "in/hello world.txt",
        "contentType": "text/plain",
        "metadata": {"source": "aws", "run": "7"},
        // `gsutil hash` of "hello world".
        "crc32c": "yZRlqg==",
        "md5Hash": "XrY7u+Ae7tCTyyK7j1rNww==",
    });
    // The name comes from the metadata only; the media part's type is overridden by it.
    let path = format!("{UPLOAD}?uploadType=multipart&ifGenerationMatch=0");
    let answer = multipart_with(&emulator, &token, &path, &metadata, b"hello world")
        .await
        .unwrap();
    answer.expect(200);
    let object = answer.json();
    let generation = object["generation"].as_str().unwrap();
    let generation_number: i64 = generation.parse().unwrap();
    assert!(generation_number > 1_700_000_000_000_000, "{generation}");
    assert_eq!(object["kind"], "storage#object");
    assert_eq!(
        object["id"],
        format!("{BUCKET}/in/hello world.txt/{generation}")
    );
    assert_eq!(object["name"], "in/hello world.txt");
    assert_eq!(object["bucket"], BUCKET);
    assert_eq!(object["metageneration"], "1");
    assert_eq!(object["contentType"], "text/plain");
    assert_eq!(object["storageClass"], "STANDARD");
    assert_eq!(object["size"], "11");
    assert_eq!(object["crc32c"], "yZRlqg==");
    assert_eq!(object["md5Hash"], "XrY7u+Ae7tCTyyK7j1rNww==");
    assert_eq!(object["metadata"], json!({"source": "aws", "run": "7"}));
    assert_eq!(
        object["selfLink"],
        format!("https://www.googleapis.com/storage/v1/b/{BUCKET}/o/in%2Fhello%20world.txt")
    );
    assert!(
        object["mediaLink"]
            .as_str()
            .unwrap()
            .ends_with(&format!("?generation={generation}&alt=media"))
    );
    // The protobuf {1: generation, 2: metageneration}, base64.
    let etag = BASE64.decode(object["etag"].as_str().unwrap()).unwrap();
    assert_eq!(
        (etag[0], &etag[etag.len() - 2..]),
        (0x08, &[0x10, 0x01][..])
    );
    let created = object["timeCreated"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
            .is_ok()
    );
    assert_eq!(object["updated"], created);

    let stored = emulator.object("in/hello world.txt").unwrap();
    assert_eq!(stored.generation, generation_number);
    assert_eq!(stored.size, 11);
    assert_eq!(stored.crc32c, "yZRlqg==");
    assert_eq!(stored.md5_hash, "XrY7u+Ae7tCTyyK7j1rNww==");
    assert_eq!(
        stored.sha256_hex,
        "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
    );
    assert_eq!(stored.content_type, "text/plain");
    assert_eq!(stored.metadata["source"], "aws");
    let file = stored.path.as_ref().unwrap();
    assert!(file.starts_with(emulator.storage_dir().unwrap()));
    assert_eq!(std::fs::read(file).unwrap(), b"hello world");
    assert_eq!(emulator.objects(), vec![stored]);
    assert_eq!(staged_files(&emulator), 0);

    let entries = gcs_entries(&emulator);
    assert_eq!(entries.len(), 1);
    assert_eq!(emulator.count(Endpoint::Gcs), 1);
    let log = entries[0].gcs.as_ref().unwrap();
    assert_eq!(log.upload_type.as_deref(), Some("multipart"));
    assert_eq!(entries[0].status, 200);
    assert!(log.bytes_received > 11);
}

#[tokio::test]
async fn binary_media_containing_boundary_like_bytes_survives() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    // Near-delimiters and CRLFs across what will be frame boundaries.
    let mut data = pattern(0..300_000);
    for at in [0usize, 1000, 65_535, 131_070, 299_000] {
        let fake = format!("\r\n--{}", &BOUNDARY[..BOUNDARY.len() - 1]);
        data.splice(at..at + fake.len(), fake.bytes());
    }
    data.extend_from_slice(b"\r\n--");
    let answer = try_multipart(&emulator, &token, "binary", &data)
        .await
        .unwrap();
    answer.expect(200);
    let stored = emulator.object("binary").unwrap();
    assert_eq!(stored.size, data.len() as u64);
    assert_eq!(std::fs::read(stored.path.unwrap()).unwrap(), data);
}

#[tokio::test]
async fn wrong_checksums_are_refused_and_create_nothing() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    let data = b"hello world";
    let path = upload_path("multipart", "checked", Some("0"));

    let wrong_crc = json!({"crc32c": "AAAAAA==", "md5Hash": "XrY7u+Ae7tCTyyK7j1rNww=="});
    let answer = multipart_with(&emulator, &token, &path, &wrong_crc, data)
        .await
        .unwrap();
    assert_gcs_error(
        &answer,
        400,
        "invalid",
        "Provided CRC32C \"AAAAAA==\" doesn't match calculated CRC32C \"yZRlqg==\".",
    );

    let wrong_md5 = json!({"md5Hash": "AAAAAAAAAAAAAAAAAAAAAA=="});
    let answer = multipart_with(&emulator, &token, &path, &wrong_md5, data)
        .await
        .unwrap();
    assert_gcs_error(
        &answer,
        400,
        "invalid",
        "Provided MD5 hash \"AAAAAAAAAAAAAAAAAAAAAA==\" doesn't match calculated MD5 hash \
         \"XrY7u+Ae7tCTyyK7j1rNww==\".",
    );

    assert!(emulator.object("checked").is_none());
    assert!(emulator.objects().is_empty());
    assert_eq!(staged_files(&emulator), 0);
    // Nothing blocks the correct upload afterwards.
    try_multipart(&emulator, &token, "checked", data)
        .await
        .unwrap()
        .expect(200);
}

#[tokio::test]
async fn malformed_multipart_bodies_are_400s() {
    let emulator = start(EmulatorConfig::demo()).await;
    let bearer = format!("Bearer {}", emulator.issue_access_token_for_tests());
    let path = upload_path("multipart", "m", Some("0"));
    let related = format!("multipart/related; boundary={BOUNDARY}");
    let full = multipart_body(&json!({}), "text/plain", b"data");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("text/plain", full.clone()),
        (&related, full[..full.len() - 10].to_vec()),
        (&related, b"no boundary here".to_vec()),
        (
            &related,
            format!("--{BOUNDARY}\r\nContent-Type: application/json\r\n\r\n{{\r\n--{BOUNDARY}\r\n\r\nx\r\n--{BOUNDARY}--")
                .into_bytes(),
        ),
    ];
    for (content_type, body) in cases {
        let answer = send(
            &emulator,
            Method::POST,
            &path,
            &[("authorization", &bearer), ("content-type", content_type)],
            bytes(body),
        )
        .await;
        answer.expect(400);
        assert!(answer.json()["error"]["errors"][0]["reason"].is_string());
    }
    assert!(emulator.objects().is_empty());
    assert_eq!(staged_files(&emulator), 0);
}
