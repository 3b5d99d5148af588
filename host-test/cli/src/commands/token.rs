//! `host-test token`: the token flow (AWS → Google STS → service account) run once, and what
//! was obtained printed as JSON — never the token itself.

use anyhow::Result;
use serde_json::json;

use crate::{Cli, DestArgs, NetArgs, session};

pub async fn run(cli: &Cli, dest: &DestArgs, net: &NetArgs) -> Result<()> {
    let destination = wif_push_host::dest::load(&dest.config)?;
    let mut session = session(cli, net.outbound()?).await?;
    let info = session.access_token(&destination).await?;
    let expires = time::OffsetDateTime::from_unix_timestamp(info.expires_at.seconds as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    let out = json!({
        "service_account": info.service_account,
        "expires_at": expires,
        "requests": session.requests_sent(),
    });
    println!("{out}");
    Ok(())
}
