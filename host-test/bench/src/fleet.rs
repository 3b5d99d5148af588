//! One token exchange per fleet: fresh instances of the token-store build, one after another
//! as a host that makes an instance per request has them, with the store named and without.
//! Counts the exchanges Google sees and times each instance to its token.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use wif_push_emulator::Endpoint;
use wif_push_host::runtime::{BUILT_KEYVALUE_COMPONENT, Runtime};

use super::{Bench, Row, median};

const INSTANCES: usize = 20;

pub(super) async fn run(bench: &Bench) -> Result<Vec<Row>> {
    let demo = bench.demo().await?;
    let runtime = Runtime::load(Some(Path::new(BUILT_KEYVALUE_COMPONENT)))?;
    let group = "fleet";
    let mut rows = Vec::new();
    let mut exchanges_without = 0;
    for named in [false, true] {
        let before = demo.emulator.count(Endpoint::Sts);
        let mut times = Vec::new();
        for _ in 0..INSTANCES {
            let mut env = demo.env.clone();
            if named {
                env.vars
                    .push(("WIF_PUSH_TOKEN_STORE".into(), "tokens".into()));
            }
            let outbound = demo.outbound()?;
            let started = Instant::now();
            let mut session =
                wif_push_host::runtime::Session::new(&runtime, &env, outbound).await?;
            session.access_token(&demo.destination).await?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        let exchanges = demo.emulator.count(Endpoint::Sts) - before;
        let how = if named {
            "the token store named (WIF_PUSH_TOKEN_STORE, host-test's wasi:keyvalue)"
        } else {
            "no token store"
        };
        let mut row = Row::new(
            group,
            format!("token exchanges for {INSTANCES} fresh instances, {how}"),
            "exchanges",
        )
        .value(exchanges as f64)
        .note(format!(
            "the token-store build, a fresh instance per request as wasmtime serve and Spin make them; median {:.1} ms from instantiation to a token",
            median(&mut times)
        ));
        if named {
            row = row
                .ratio(
                    Some(exchanges as f64 / exchanges_without as f64),
                    "no store",
                )
                .target("1 per token lifetime", Some(exchanges == 1));
        } else {
            exchanges_without = exchanges;
        }
        rows.push(row);
    }
    Ok(rows)
}
