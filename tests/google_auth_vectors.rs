//! The request-signing vectors published with google-auth (Python), `tests/test_aws.py`
//! (Apache-2.0, Google LLC): the cases that sign with `x-amz-date`, which is how every subject
//! token is signed. The older cases there sign with a `date` header instead, which wif-push
//! never sends.

use time::macros::datetime;
use wif_push::secret::Secret;
use wif_push::sigv4::{
    Credentials, SignableBody, SignableRequest, SigningParams, SigningSettings, sign, split_url,
};

const ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const TOKEN: &str = "AQoEXAMPLEH4aoAH0gNCAPyJxz4BlCFFxWNE1OPTgk5TthT+FvwqnKwRcOIfrRh3c/LTo6UDdyJwOOvEVPvLXCrrrUtdnniCEXAMPLE/IvU1dYUg2RVAJBanLiHb4IgRmpRV3zrkuWJOgQs8IZZaIv2BXIa2R4OlgkBN9bkUDNCJiBeb/AXlzBBko7b15fjrBs2+cTQtpZ3CYWFXG8C5zqx37wnOE49mRl/+OtkIKGO7fAE";
const REQUEST_PARAMS: &str = r#"{"KeySchema":[{"KeyType":"HASH","AttributeName":"Id"}],"TableName":"TestTable","AttributeDefinitions":[{"AttributeName":"Id","AttributeType":"S"}],"ProvisionedThroughput":{"WriteCapacityUnits":5,"ReadCapacityUnits":5}}"#;

/// Signs as google-auth's RequestSigner does (service = the host's first label, us-east-2,
/// 2020-08-11T06:55:22Z) and returns the Authorization header.
fn authorization(
    method: &str,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> String {
    let (host, path_and_query) = split_url(url).unwrap();
    let service = host.split('.').next().unwrap().to_owned();
    let credentials = Credentials {
        access_key_id: ACCESS_KEY_ID.into(),
        secret_access_key: Secret::new(SECRET_ACCESS_KEY),
        session_token: token.map(Secret::new),
    };
    let mut all = vec![("host", host.as_str())];
    all.extend_from_slice(headers);
    let out = sign(
        &SignableRequest {
            method,
            path_and_query: &path_and_query,
            headers: all,
            body: SignableBody::Bytes(body.as_bytes()),
        },
        &SigningParams {
            credentials: &credentials,
            region: "us-east-2",
            service: &service,
            time: datetime!(2020-08-11 06:55:22 UTC),
            settings: SigningSettings::default(),
        },
    )
    .unwrap();
    assert_eq!(out.x_amz_date, "20200811T065522Z");
    assert_eq!(out.header("x-amz-security-token"), token);
    out.authorization().unwrap().to_owned()
}

#[test]
fn get_with_session_token() {
    assert_eq!(
        authorization(
            "GET",
            "https://ec2.us-east-2.amazonaws.com?Action=DescribeRegions&Version=2013-10-15",
            Some(TOKEN),
            &[],
            ""
        ),
        format!(
            "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20200811/us-east-2/ec2/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=41e226f997bf917ec6c9b2b14218df0874225f13bb153236c247881e614fafc9"
        )
    );
}

#[test]
fn post_get_caller_identity_with_session_token() {
    assert_eq!(
        authorization(
            "POST",
            "https://sts.us-east-2.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
            Some(TOKEN),
            &[],
            ""
        ),
        format!(
            "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20200811/us-east-2/sts/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=596aa990b792d763465d73703e684ca273c45536c6d322c31be01a41d02e5b60"
        )
    );
}

#[test]
fn post_get_caller_identity_without_session_token() {
    assert_eq!(
        authorization(
            "POST",
            "https://sts.us-east-2.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
            None,
            &[],
            ""
        ),
        format!(
            "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20200811/us-east-2/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=9e722e5b7bfa163447e2a14df118b45ebd283c5aea72019bdf921d6e7dc01a9a"
        )
    );
}

#[test]
fn post_with_session_token_headers_and_body() {
    let headers = [
        ("Content-Type", "application/x-amz-json-1.0"),
        ("x-amz-target", "DynamoDB_20120810.CreateTable"),
    ];
    assert_eq!(
        authorization(
            "POST",
            "https://dynamodb.us-east-2.amazonaws.com/",
            Some(TOKEN),
            &headers,
            REQUEST_PARAMS
        ),
        format!(
            "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20200811/us-east-2/dynamodb/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=eb8bce0e63654bba672d4a8acb07e72d69210c1797d56ce024dbbc31beb2a2c7"
        )
    );
}
