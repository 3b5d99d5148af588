//! `host-test serve`: the sidecar ([`wif_push_host::serve`]) on a loopback port for one
//! destination or several (`ID=DEST.toml`), until SIGTERM or Ctrl-C.

use anyhow::Result;
use wif_push_host::dest::sidecar_env;
use wif_push_host::runtime::{GuestEnv, Runtime};
use wif_push_host::serve::{ServeOptions, Server, terminated};

use crate::{Cli, NetArgs};

pub async fn run(cli: &Cli, config: &[String], options: ServeOptions, net: &NetArgs) -> Result<()> {
    let listen = options.listen;
    anyhow::ensure!(
        listen.ip().is_loopback(),
        "--listen {listen}: the sidecar takes files from anyone who can reach it and \
         has no authentication of its own; listen on a loopback address (127.0.0.1 or \
         [::1]) and let only the application beside it connect"
    );
    let mut destinations = Vec::new();
    for spec in config {
        let (id, path) = match spec.split_once('=') {
            Some((id, path)) if !id.contains('/') => (id.to_owned(), path),
            _ => ("default".to_owned(), spec.as_str()),
        };
        let dest = wif_push_host::dest::load(std::path::Path::new(path))?;
        // The component answers 422 for a broken destination and keeps serving the others;
        // say at once which one it is.
        if let Err(e) = wif_push::config::Destination::from_settings(&dest) {
            eprintln!(
                "host-test serve: destination {id} ({path}): {e}; it answers 422 until fixed"
            );
        }
        destinations.push((id, dest));
    }
    let mut env = GuestEnv::aws(|name| std::env::var(name).ok());
    env.vars.extend(sidecar_env(&destinations));
    let runtime = Runtime::load(cli.component.as_deref())?;
    let server = Server::start(runtime, env, net.outbound()?, options).await?;
    let stop = terminated()?;
    println!("wif-push sidecar on http://{}", server.addr());
    stop.await?;
    eprintln!("host-test serve: stopping; requests in flight may finish");
    server.shutdown().await;
    Ok(())
}
