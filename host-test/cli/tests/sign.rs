//! `host-test sign` signs inside the component, in Wasmtime, and must agree with botocore's
//! SigV4Auth / SigV4QueryAuth; bad input gets one clear line and a failing exit code.

mod common;

use std::process::Command;

use serde_json::{Value, json};

fn base() -> Value {
    json!({
        "method": "POST",
        "url": "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
        "headers": {"x-goog-cloud-target-resource":
            "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/a"},
        "region": "us-east-1",
        "service": "sts",
        "time": "2024-02-29T23:59:59Z",
        "access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    })
}

fn with(mut v: Value, patch: Value) -> Value {
    for (k, val) in patch.as_object().unwrap() {
        v[k] = val.clone();
    }
    v
}

fn ours(request: &Value) -> Value {
    let out = common::host_test(&["sign"], &request.to_string());
    assert!(
        out.status.success(),
        "host-test sign failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn botocore(request: &Value) -> Value {
    let mut cmd = Command::new(common::python());
    cmd.arg(common::repo_root().join("tests/peers/botocore_sign.py"));
    let out = common::run_with_stdin(cmd, &request.to_string());
    assert!(
        out.status.success(),
        "botocore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn cases() -> Vec<(&'static str, Value)> {
    vec![
        ("subject token request", base()),
        (
            "session token",
            with(
                base(),
                json!({"session_token": "FwoGZXIvYXdzEBYaDH+token/with=chars"}),
            ),
        ),
        (
            "GET with query",
            with(
                base(),
                json!({"method": "GET", "url": "https://example.amazonaws.com/a/b.c?z=1&a=%2F&m=x%20y"}),
            ),
        ),
        (
            "body",
            with(
                base(),
                json!({"body": "Action=GetCallerIdentity&Version=2011-06-15",
            "headers": {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}}),
            ),
        ),
        (
            "encoded path",
            with(
                base(),
                json!({"method": "GET", "url": "https://example.amazonaws.com/p%20q/%E1%88%B4/r"}),
            ),
        ),
        (
            "header whitespace",
            with(
                base(),
                json!({"headers": {"X-Custom": "  a   b  ", "x-Other": "1"}}),
            ),
        ),
        (
            "non-default port",
            with(
                base(),
                json!({"url": "https://sts.us-east-1.amazonaws.com:8443/"}),
            ),
        ),
        (
            "query placement",
            with(
                base(),
                json!({"placement": "query", "method": "GET",
            "url": "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"}),
            ),
        ),
        (
            "query placement with session token",
            with(
                base(),
                json!({"placement": "query",
            "method": "GET", "expires_in": 900, "session_token": "IQoJb3JpZ2luX2VjE+/token=="}),
            ),
        ),
        (
            "other region and service",
            with(
                base(),
                json!({"region": "eu-west-3", "service": "execute-api",
            "method": "PUT", "url": "https://abc.execute-api.eu-west-3.amazonaws.com/prod/items/1", "body": "{}"}),
            ),
        ),
    ]
}

#[test]
fn agrees_with_botocore() {
    for (name, request) in cases() {
        let ours = ours(&request);
        let theirs = botocore(&request);
        assert_eq!(
            ours["canonical_request"], theirs["canonical_request"],
            "{name}: canonical request"
        );
        assert_eq!(
            ours["string_to_sign"], theirs["string_to_sign"],
            "{name}: string to sign"
        );
        assert_eq!(ours["signature"], theirs["signature"], "{name}: signature");
        if request.get("placement") == Some(&json!("query")) {
            // Same parameters on the wire, whatever their order.
            let params = |v: &Value| {
                let url = v["url"].as_str().unwrap().to_owned();
                let mut p: Vec<String> = url
                    .split_once('?')
                    .unwrap()
                    .1
                    .split('&')
                    .map(str::to_owned)
                    .collect();
                p.sort();
                p
            };
            assert_eq!(params(&ours), params(&theirs), "{name}: presigned URL");
        } else {
            assert_eq!(
                ours["authorization"], theirs["authorization"],
                "{name}: authorization"
            );
        }
    }
}

#[test]
fn a_different_secret_disagrees_with_botocore() {
    // Guards the comparison above against passing vacuously.
    let ours = ours(&base());
    let theirs = botocore(&with(
        base(),
        json!({"secret_access_key": "another-secret-key"}),
    ));
    assert_ne!(ours["signature"], theirs["signature"]);
}

#[test]
fn output_lists_the_headers_to_add() {
    let out = ours(&with(base(), json!({"session_token": "tok"})));
    let names: Vec<&str> = out["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["x-amz-date", "x-amz-security-token", "authorization"]
    );
    assert_eq!(out["x_amz_date"], "20240229T235959Z");
    assert_eq!(
        out["signed_headers"],
        "host;x-amz-date;x-amz-security-token;x-goog-cloud-target-resource"
    );
}

fn fails_with(request: &str, expected: &str) {
    let out = common::host_test(&["sign"], request);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {request}");
    assert!(out.stdout.is_empty(), "nothing on stdout on failure");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(expected),
        "{stderr:?} should contain {expected:?}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !stderr.contains("wJalrXUtnFEMI"),
        "the secret leaked: {stderr}"
    );
}

#[test]
fn bad_input_is_one_clear_line() {
    let mut missing = base();
    missing.as_object_mut().unwrap().remove("region");
    fails_with(&missing.to_string(), "missing field `region`");
    fails_with("not json", "not valid sign JSON");
    fails_with(
        &with(base(), json!({"url": "sts.amazonaws.com/no-scheme"})).to_string(),
        "is not an absolute http(s) URL",
    );
    fails_with(
        &with(base(), json!({"url": "https://h/a b"})).to_string(),
        "is not an absolute http(s) URL",
    );
    fails_with(
        &with(base(), json!({"time": "yesterday"})).to_string(),
        "is not an RFC 3339 timestamp",
    );
    fails_with(
        &with(base(), json!({"time": "1969-12-31T23:59:59Z"})).to_string(),
        "before 1970",
    );
    fails_with(
        &with(base(), json!({"region": "us east 1"})).to_string(),
        "is not an AWS region",
    );
    fails_with(
        &with(base(), json!({"access_key_id": ""})).to_string(),
        "access_key_id is empty",
    );
    fails_with(
        &with(base(), json!({"placement": "sideways"})).to_string(),
        "unknown variant `sideways`",
    );
    fails_with(
        &with(base(), json!({"payload_sha256": "abc"})).to_string(),
        "is not a SHA-256",
    );
    fails_with(
        &with(base(), json!({"body": "x", "payload_sha256": "abc"})).to_string(),
        "at most one of",
    );
    fails_with(
        &with(base(), json!({"placement": "query", "expires_in": 604801})).to_string(),
        "expires_in 604801 is out of range",
    );
    fails_with(
        &with(base(), json!({"headers": {"x-evil": "a\r\nInjected: 1"}})).to_string(),
        "control character",
    );
    fails_with(
        &with(base(), json!({"surprise": 1})).to_string(),
        "unknown field `surprise`",
    );
}

#[test]
fn json_errors_for_machines() {
    let out = common::host_test(&["--json", "sign"], "{}");
    assert!(!out.status.success());
    let err: Value = serde_json::from_slice(&out.stderr).expect("stderr is JSON");
    assert_eq!(err["error"]["command"], "sign");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing field")
    );
}
