//! The AWS region, from the configuration, the environment or the instance's availability zone.

use super::imds::Imds;
use super::{Quote, env};
use crate::config::AwsEndpoints;
use crate::error::{Error, Step};
use crate::io::Io;

/// How to give the region when none could be found.
const REGION_FIX: &str = "set aws_region in the destination (DEST.toml) or AWS_REGION; on EC2, \
                          check the instance metadata service is enabled and reachable";

/// The AWS region: the destination's `aws_region`, then `AWS_REGION`, `AWS_DEFAULT_REGION`,
/// then the instance's availability zone from IMDS.
pub fn region(
    io: &mut dyn Io,
    configured: Option<&str>,
    source: &AwsEndpoints,
    imds_v1_fallback: bool,
) -> Result<String, Error> {
    if let Some(region) = configured {
        return Ok(region.to_owned());
    }
    for var in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
        if let Some(region) = env(io, var) {
            crate::config::validate_region(var, region.trim())?;
            return Ok(region.trim().to_owned());
        }
    }
    let Some(url) = &source.region_url else {
        return Err(Error::new(Step::AwsRegion, "no AWS region is set").with_fix(REGION_FIX));
    };
    let mut imds = Imds::new(source, imds_v1_fallback);
    let zone = imds
        .get(io, url, Step::AwsRegion, Quote::Excerpt)
        .map_err(|e| e.with_fix(REGION_FIX))?;
    let zone = zone.trim();
    // An availability zone is its region plus one letter: us-east-1b.
    let region = zone
        .strip_suffix(|c: char| c.is_ascii_lowercase())
        .filter(|r| r.ends_with(|c: char| c.is_ascii_digit()))
        .filter(|r| crate::config::validate_region("", r).is_ok())
        .ok_or_else(|| {
            Error::new(
                Step::AwsRegion,
                format!(
                    "IMDS answered availability zone {zone_q}, which names no region",
                    zone_q = crate::error::quote(zone, 100)
                ),
            )
            .with_fix(REGION_FIX)
        })?;
    Ok(region.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::fixtures::source;
    use crate::testing::{FakeIo, respond};

    #[test]
    fn a_missing_region_names_both_ways_to_give_it() {
        let mut io = FakeIo::new();
        let e = region(&mut io, None, &source(), false).unwrap_err();
        assert_eq!(e.step, Step::AwsRegion);
        let fix = e.fix.unwrap();
        assert!(
            fix.contains("aws_region") && fix.contains("AWS_REGION"),
            "{fix}"
        );
    }

    #[test]
    fn region_order_and_availability_zone() {
        let mut io = FakeIo::new();
        io.set_env("AWS_DEFAULT_REGION", "eu-west-1")
            .set_env("AWS_REGION", "eu-west-3");
        assert_eq!(
            region(&mut io, None, &source(), false).unwrap(),
            "eu-west-3"
        );
        assert_eq!(
            region(&mut io, Some("ap-south-1"), &source(), false).unwrap(),
            "ap-south-1"
        );
        let mut io = FakeIo::new();
        io.on("PUT http://169.254.169.254/latest/api/token", |_| {
            respond(200, "t")
        });
        io.on(
            "GET http://169.254.169.254/latest/meta-data/placement",
            |_| respond(200, "us-west-2c"),
        );
        assert_eq!(
            region(&mut io, None, &source(), false).unwrap(),
            "us-west-2"
        );
    }

    /// The zone's region is checked as a configured one is: it goes into the host that the
    /// subject token is signed for.
    #[test]
    fn a_zone_that_names_no_region_is_refused() {
        for zone in ["us-eas@t-1a", "US-EAST-1a", "sts.example/1a"] {
            let mut io = FakeIo::new();
            io.on("PUT http://169.254.169.254/latest/api/token", |_| {
                respond(200, "t")
            });
            io.on(
                "GET http://169.254.169.254/latest/meta-data/placement",
                move |_| respond(200, zone),
            );
            let err = region(&mut io, None, &source(), false).unwrap_err();
            assert!(err.message.contains("names no region"), "{zone}: {err}");
        }
    }
}
