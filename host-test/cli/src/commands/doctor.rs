//! `host-test doctor`: the component's checklist of the chain, one line a step, or as JSON;
//! exit 0 only when the handshake object landed.

use anyhow::{Result, bail};
use serde_json::{Value, json};
use wif_push_host::runtime::{delivery, receipt_json};

use crate::{Cli, DestArgs, NetArgs, session};

pub async fn run(cli: &Cli, dest: &DestArgs, net: &NetArgs) -> Result<()> {
    let checklist = match wif_push_host::dest::load(&dest.config) {
        Ok(destination) => {
            let mut session = session(cli, net.outbound()?).await?;
            session.doctor(&destination).await?
        }
        // A file that cannot be read as a destination is the checklist's first (and only) line.
        Err(e) => delivery::Checklist {
            passed: false,
            checks: vec![delivery::Check {
                step: "config".into(),
                passed: false,
                saw: format!("{e:#}"),
                fix: None,
            }],
            receipt: None,
        },
    };
    if cli.json {
        println!("{}", to_json(&checklist));
    } else {
        print!("{}", to_text(&checklist));
    }
    match checklist.checks.iter().find(|c| !c.passed) {
        None if checklist.passed => Ok(()),
        Some(failed) => bail!(
            "the chain stopped at {}: fix it as the checklist says, then run doctor again",
            failed.step
        ),
        None => bail!("the handshake object did not land"),
    }
}

fn to_json(checklist: &delivery::Checklist) -> Value {
    let checks: Vec<Value> = checklist
        .checks
        .iter()
        .map(|c| json!({"step": c.step, "passed": c.passed, "saw": c.saw, "fix": c.fix}))
        .collect();
    let receipt = checklist
        .receipt
        .as_ref()
        .map(|r| serde_json::from_str::<Value>(&receipt_json(r, None)).expect("receipts are JSON"));
    json!({"passed": checklist.passed, "checks": checks, "receipt": receipt})
}

/// One line a step, `✓` or `✗`, the step's name in a column, what it saw; a failed step's fix
/// on the line below.
fn to_text(checklist: &delivery::Checklist) -> String {
    let width = checklist
        .checks
        .iter()
        .map(|c| c.step.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for check in &checklist.checks {
        let mark = if check.passed { "✓" } else { "✗" };
        out.push_str(&format!("{mark} {:width$}  {}\n", check.step, check.saw));
        if let Some(fix) = &check.fix {
            out.push_str(&format!("  {:width$}  fix: {fix}\n", ""));
        }
    }
    if checklist.passed {
        out.push_str("the chain works: the handshake object landed\n");
    }
    out
}
