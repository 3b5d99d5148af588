//! The rules every destination value obeys, each naming the field and a valid example.

use super::{
    AwsRole, CHUNK_QUANTUM, ConfigError, DEFAULT_CRED_VERIFICATION_URL, MAX_LIFETIME_SECONDS,
    MIN_LIFETIME_SECONDS, Settings, error,
};

pub(crate) fn required(
    value: &Option<String>,
    field: &str,
    fix: &str,
) -> Result<String, ConfigError> {
    match value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v.to_owned()),
        _ => Err(error(field, "is missing", fix)),
    }
}

/// An https URL; plain http only to a loopback address, where an emulator runs beside the
/// sender (as `STORAGE_EMULATOR_HOST` allows in Google's clients).
pub(crate) fn https_url(field: &str, url: &str) -> Result<String, ConfigError> {
    let ok = url.parse::<http::Uri>().ok().filter(|u| {
        let host = u.host().unwrap_or("");
        match u.scheme_str() {
            Some("https") => !host.is_empty(),
            Some("http") => is_loopback(host),
            _ => false,
        }
    });
    match ok {
        Some(_) => Ok(url.to_owned()),
        None => Err(error(
            field,
            format!("is {url_q}", url_q = crate::error::quote(url, 100)),
            "expected an https:// URL (http:// only to a loopback emulator, e.g. \
             http://127.0.0.1:8080; host-test can also route a host there with --connect-to)",
        )),
    }
}

pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `//iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER`
pub fn validate_audience(field: &str, audience: &str) -> Result<(), ConfigError> {
    let expected = "expected //iam.googleapis.com/projects/PROJECT_NUMBER/locations/global/workloadIdentityPools/POOL_ID/providers/PROVIDER_ID";
    let rest = audience
        .strip_prefix("//iam.googleapis.com/projects/")
        .ok_or_else(|| {
            error(
                field,
                format!(
                    "is {audience_q}",
                    audience_q = crate::error::quote(audience, 100)
                ),
                expected,
            )
        })?;
    let parts: Vec<&str> = rest.split('/').collect();
    let shape_ok = parts.len() == 7
        && parts[1] == "locations"
        && parts[2] == "global"
        && parts[3] == "workloadIdentityPools"
        && parts[5] == "providers";
    if !shape_ok {
        return Err(error(
            field,
            format!(
                "is {audience_q}",
                audience_q = crate::error::quote(audience, 100)
            ),
            expected,
        ));
    }
    if parts[0].is_empty() || !parts[0].bytes().all(|b| b.is_ascii_digit()) {
        return Err(error(
            field,
            format!("names project {:?}", parts[0]),
            "the audience takes the project *number* (digits), not the project id",
        ));
    }
    validate_id(&format!("{field} (pool id)"), parts[4])?;
    validate_id(&format!("{field} (provider id)"), parts[6])
}

/// Pool and provider ids: 4 to 32 lowercase letters, digits and hyphens.
pub(crate) fn validate_id(field: &str, id: &str) -> Result<(), ConfigError> {
    let ok = (4..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(error(
            field,
            format!("is {id_q}", id_q = crate::error::quote(id, 100)),
            "expected 4 to 32 lowercase letters, digits or hyphens, e.g. \"aws-partner\"",
        ))
    }
}

pub(crate) fn validate_service_account(email: &str) -> Result<(), ConfigError> {
    let ok = email
        .split_once('@')
        .is_some_and(|(name, domain)| !name.is_empty() && domain.ends_with("gserviceaccount.com"))
        && email.bytes().filter(|b| *b == b'@').count() == 1
        && email
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@.-_".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(error(
            "service_account",
            format!("is {email_q}", email_q = crate::error::quote(email, 100)),
            "expected a service account email, e.g. \"uploader@partner-project.iam.gserviceaccount.com\"",
        ))
    }
}

pub(crate) fn service_account_from_url(url: &str) -> Result<String, ConfigError> {
    let field = "credential_config.service_account_impersonation_url";
    let email = url
        .rsplit_once("/serviceAccounts/")
        .and_then(|(_, rest)| rest.strip_suffix(":generateAccessToken"))
        .ok_or_else(|| {
            error(
                field,
                format!("is {url_q}", url_q = crate::error::quote(url, 100)),
                "expected https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/EMAIL:generateAccessToken",
            )
        })?;
    validate_service_account(email).map_err(|e| ConfigError {
        field: field.into(),
        ..e
    })?;
    Ok(email.to_owned())
}

pub(crate) fn validate_lifetime(seconds: u32) -> Result<(), ConfigError> {
    if (MIN_LIFETIME_SECONDS..=MAX_LIFETIME_SECONDS).contains(&seconds) {
        Ok(())
    } else {
        Err(error(
            "token_lifetime_seconds",
            format!("is {seconds}"),
            format!(
                "expected {MIN_LIFETIME_SECONDS} to {MAX_LIFETIME_SECONDS} seconds (above 3600 needs the partner's constraints/iam.allowServiceAccountCredentialLifetimeExtension policy)"
            ),
        ))
    }
}

pub(crate) fn validate_chunk_size(bytes: u64) -> Result<(), ConfigError> {
    if bytes >= CHUNK_QUANTUM && bytes.is_multiple_of(CHUNK_QUANTUM) && bytes <= 1 << 30 {
        Ok(())
    } else {
        Err(error(
            "chunk_size",
            format!("is {bytes}"),
            "expected a multiple of 262144 (256 KiB) up to 1 GiB, e.g. 16777216 (16 MiB)",
        ))
    }
}

pub(crate) fn validate_upload_timeout(seconds: u32) -> Result<(), ConfigError> {
    if (1..=3600).contains(&seconds) {
        Ok(())
    } else {
        Err(error(
            "upload_timeout_seconds",
            format!("is {seconds}"),
            "expected 1 to 3600 seconds, e.g. 600 for large chunks over a slow link",
        ))
    }
}

/// Google's bucket naming rules, the ones a typo breaks: 3-63 characters, or up to 222 when
/// dots separate parts of at most 63.
pub fn validate_bucket(bucket: &str) -> Result<(), ConfigError> {
    let max = if bucket.contains('.') { 222 } else { 63 };
    let ok = (3..=max).contains(&bucket.len())
        && bucket.split('.').all(|part| part.len() <= 63)
        && bucket.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        })
        && bucket.as_bytes()[0].is_ascii_alphanumeric()
        && bucket.as_bytes()[bucket.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(error(
            "bucket",
            format!("is {bucket_q}", bucket_q = crate::error::quote(bucket, 100)),
            "expected a bucket name alone (3-63 lowercase letters, digits, '-', '_' or '.', up to \
             222 with dots and at most 63 between them), without gs:// or a path",
        ))
    }
}

pub(crate) fn validate_prefix(prefix: &str) -> Result<(), ConfigError> {
    let bad = prefix.starts_with('/')
        || prefix.split('/').any(|s| s == "." || s == "..")
        || prefix.chars().any(char::is_control)
        || prefix.len() > 512;
    if bad {
        Err(error(
            "prefix",
            format!("is {prefix_q}", prefix_q = crate::error::quote(prefix, 100)),
            "expected an object-name prefix such as \"incoming/2026/\" (no leading '/', no '.' or '..' segments)",
        ))
    } else {
        Ok(())
    }
}

pub fn validate_region(field: &str, region: &str) -> Result<(), ConfigError> {
    let ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(error(
            field,
            format!("is {region_q}", region_q = crate::error::quote(region, 100)),
            "expected an AWS region such as \"us-east-1\"",
        ))
    }
}

pub(crate) fn validate_imds_url(field: &str, url: &str) -> Result<String, ConfigError> {
    let host_ok = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
        .is_some_and(|host| crate::aws::IMDS_HOSTS.contains(&host));
    if host_ok && url.parse::<http::Uri>().is_ok() {
        Ok(url.to_owned())
    } else {
        Err(error(
            field,
            format!("is {url_q}", url_q = crate::error::quote(url, 100)),
            "expected an AWS metadata URL on http://169.254.169.254 or http://[fd00:ec2::254]",
        ))
    }
}

pub(crate) fn validate_verification_url(url: &str) -> Result<String, ConfigError> {
    let field = "credential_config.credential_source.regional_cred_verification_url";
    let filled = url.replace("{region}", "us-east-1");
    let uri = filled.parse::<http::Uri>().ok();
    // Visible ASCII only: it becomes the signed request's path and query.
    let host_ok = filled.bytes().all(|b| b.is_ascii_graphic())
        && uri.as_ref().is_some_and(|u| {
            u.scheme_str() == Some("https")
                && u.host()
                    .is_some_and(|h| h.starts_with("sts.") && h.contains(".amazonaws.com"))
        });
    if host_ok && url.contains("GetCallerIdentity") {
        Ok(url.to_owned())
    } else {
        Err(error(
            field,
            format!("is {url_q}", url_q = crate::error::quote(url, 100)),
            format!("expected \"{DEFAULT_CRED_VERIFICATION_URL}\""),
        ))
    }
}

/// `aws_role_arn` (an IAM role ARN), and the external id and session name that only go with it.
pub(crate) fn aws_role(settings: &Settings) -> Result<Option<AwsRole>, ConfigError> {
    let Some(role_arn) = &settings.aws_role_arn else {
        for (field, value) in [
            ("aws_external_id", &settings.aws_external_id),
            ("aws_role_session_name", &settings.aws_role_session_name),
        ] {
            if value.is_some() {
                return Err(error(
                    field,
                    "is set but aws_role_arn is not",
                    "set aws_role_arn to the role this partner trusts, or remove it",
                ));
            }
        }
        return Ok(None);
    };
    let role_arn = role_arn.trim();
    let valid_arn = role_arn
        .strip_prefix("arn:")
        .and_then(|rest| rest.split_once(":iam::"))
        .and_then(|(partition, rest)| {
            let (account, role) = rest.split_once(":role/")?;
            let ok = partition.starts_with("aws")
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && !role.is_empty()
                && role.len() <= 512
                && role
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b));
            ok.then_some(())
        })
        .is_some();
    if !valid_arn {
        return Err(error(
            "aws_role_arn",
            format!("is {}", crate::error::quote(role_arn, 100)),
            "expected an IAM role ARN, e.g. \"arn:aws:iam::111122223333:role/partner-delivery\"",
        ));
    }
    // STS's own rules: [\w+=,.@:/-], 2-1224 characters; [\w+=,.@-], 2-64 characters.
    let check = |field: &str, value: &Option<String>, max: usize, extra: &[u8], example: &str| {
        match value {
            Some(v)
                if !(2..=max).contains(&v.len())
                    || !v.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b) || extra.contains(&b)
                    }) =>
            {
                Err(error(
                    field,
                    format!("is {}", crate::error::quote(v, 100)),
                    format!("expected 2 to {max} letters, digits or {example}"),
                ))
            }
            _ => Ok(()),
        }
    };
    check(
        "aws_external_id",
        &settings.aws_external_id,
        1224,
        b":/",
        "+=,.@:/-_",
    )?;
    check(
        "aws_role_session_name",
        &settings.aws_role_session_name,
        64,
        b"",
        "+=,.@-_",
    )?;
    Ok(Some(AwsRole {
        role_arn: role_arn.to_owned(),
        external_id: settings.aws_external_id.clone(),
        session_name: settings.aws_role_session_name.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The email goes into the impersonation URL as it is, so it holds only what a service
    /// account's email can.
    #[test]
    fn a_service_account_is_an_email_a_url_can_carry() {
        validate_service_account("uploader@partner-project.iam.gserviceaccount.com").unwrap();
        validate_service_account("123456789012-compute@developer.gserviceaccount.com").unwrap();
        for bad in [
            "uploader@part`er-project.iam.gserviceaccount.com",
            "up loader@partner.iam.gserviceaccount.com",
            "uploader@a@partner.iam.gserviceaccount.com",
            "uploader@partner.iam.gserviceaccount.com/../x",
        ] {
            let e = validate_service_account(bad).unwrap_err();
            assert_eq!(e.field, "service_account", "{bad}");
        }
    }

    /// The metadata URLs are requested as they are, so each must be a URL.
    #[test]
    fn a_metadata_url_is_a_url_on_a_metadata_host() {
        let field = "credential_config.credential_source.imdsv2_session_token_url";
        validate_imds_url(field, "http://169.254.169.254/latest/api/token").unwrap();
        validate_imds_url(field, "http://[fd00:ec2::254]/latest/api/token").unwrap();
        for bad in [
            "http://169.254.169.254/latest/api token",
            "http://169.254.169.254/latest/\x01",
            "http://metadata.example/latest/api/token",
        ] {
            assert_eq!(
                validate_imds_url(field, bad).unwrap_err().field,
                field,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_role_is_an_iam_role_arn_and_its_companions_need_it() {
        let role = |arn: &str, external: Option<&str>, session: Option<&str>| {
            super::aws_role(&crate::config::Settings {
                aws_role_arn: Some(arn.to_owned()).filter(|a| !a.is_empty()),
                aws_external_id: external.map(str::to_owned),
                aws_role_session_name: session.map(str::to_owned),
                ..Default::default()
            })
        };
        let ok = role(
            "arn:aws:iam::111122223333:role/path/partner-a",
            Some("ext:1/2"),
            Some("n"),
        )
        .unwrap_err();
        assert_eq!(ok.field, "aws_role_session_name");
        assert!(
            role(
                "arn:aws:iam::111122223333:role/partner-a",
                Some("ext:1/2"),
                Some("nightly")
            )
            .unwrap()
            .is_some()
        );
        for bad in [
            "arn:aws:sts::111122223333:assumed-role/a/b",
            "arn:aws:iam::1111:role/a",
            "arn:aws:iam::111122223333:user/a",
            "partner-a",
        ] {
            assert_eq!(
                role(bad, None, None).unwrap_err().field,
                "aws_role_arn",
                "{bad}"
            );
        }
        assert_eq!(
            role("", Some("x1"), None).unwrap_err().problem,
            "is set but aws_role_arn is not"
        );
        assert!(role("", None, None).unwrap().is_none());
    }
}
