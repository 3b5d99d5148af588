//! `host-test sign`: a JSON request on stdin, signed inside the component, a JSON signature on
//! stdout (the JSON shapes are [`wif_push_host::sign`]'s).

use std::io::Read as _;

use anyhow::{Context as _, Result};
use wif_push_host::outbound::{Outbound, Policy};
use wif_push_host::sign::{SignInput, SignOutput};

use crate::{Cli, session};

pub async fn run(cli: &Cli) -> Result<()> {
    let mut json = String::new();
    std::io::stdin()
        .read_to_string(&mut json)
        .context("read the request from stdin")?;
    let request = SignInput::parse(&json)?.into_wit()?;
    let mut session = session(cli, Outbound::new(Policy::default())?).await?;
    let signed = session.sign(&request).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&SignOutput::from(signed))?
    );
    Ok(())
}
