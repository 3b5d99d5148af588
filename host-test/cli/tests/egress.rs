//! Egress as companies run it, through a real proxy (tinyproxy, from Debian's packages;
//! `scripts/test` installs it): HTTPS goes through the proxy's CONNECT tunnel when
//! `HTTPS_PROXY` says so, and TLS trusts the CA bundle given (`--ca-bundle`, `SSL_CERT_FILE`),
//! as behind a TLS-inspecting proxy. Google's endpoints are the emulator behind a TLS front
//! whose certificate (for `127.0.0.1`) a test CA signed.

mod common;

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use wif_push_bench::demo::Demo;
use wif_push_emulator::EmulatorConfig;

/// A test CA, and a TLS front for `127.0.0.1` that forwards to `upstream`.
async fn tls_front(upstream: SocketAddr, dir: &Path) -> SocketAddr {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "wif-push test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(leaf.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await
                    && let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    addr
}

/// tinyproxy on a free loopback port, allowing CONNECT to `port` only; killed on drop.
struct Tinyproxy {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Tinyproxy {
    fn start(dir: &Path, connect_port: u16) -> Tinyproxy {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("tinyproxy.log");
        let config = dir.join("tinyproxy.conf");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\n\
                 ConnectPort {connect_port}\nLogFile \"{}\"\nLogLevel Connect\nMaxClients 20\n",
                log.display()
            ),
        )
        .unwrap();
        let binary = ["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("tinyproxy is installed (scripts/test installs it: apt-get install tinyproxy)");
        let mut child = Command::new(binary)
            .args(["-d", "-c"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Tinyproxy { child, port, log };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("tinyproxy did not start on port {port}");
    }

    fn tunnels(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches("CONNECT 127.0.0.1:")
            .count()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn https_goes_through_the_proxy_and_trusts_the_given_ca() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let demo = runtime
        .block_on(Demo::start(EmulatorConfig::demo()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let front = runtime.block_on(tls_front(demo.emulator.addr(), dir.path()));
    let proxy = Tinyproxy::start(dir.path(), front.port());
    let base = format!("https://127.0.0.1:{}", front.port());
    let dest = dir.path().join("dest.toml");
    std::fs::write(
        &dest,
        common::dest_toml(
            &demo,
            &format!(
                "[endpoints]\nsts = \"{base}/v1/token\"\niam_credentials = \"{base}\"\n\
                 storage = \"{base}\"\n"
            ),
        ),
    )
    .unwrap();
    let file = dir.path().join("through-the-proxy.txt");
    std::fs::write(&file, "tunnelled").unwrap();
    let ca = dir.path().join("ca.pem");
    let run = |extra: &[&OsStr], env: &[(&str, String)]| {
        let mut args: Vec<&OsStr> = vec![
            "deliver".as_ref(),
            "--no-ledger".as_ref(),
            "--config".as_ref(),
            dest.as_os_str(),
            "--allow-host".as_ref(),
            "127.0.0.1".as_ref(),
        ];
        args.extend(extra);
        args.push(file.as_os_str());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_host-test"));
        cmd.env_clear().args(&args);
        for (name, value) in &demo.env.vars {
            cmd.env(name, value);
        }
        for (name, value) in env {
            cmd.env(name, value);
        }
        let output = cmd.output().unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let through = [("HTTPS_PROXY", format!("http://127.0.0.1:{}", proxy.port))];

    // Without the CA, the front's certificate is refused, once, and said so.
    std::net::TcpStream::connect(front).expect("the TLS front listens");
    let (ok, stderr) = run(&[], &through);
    let log = std::fs::read_to_string(&proxy.log).unwrap_or_default();
    assert!(stderr.contains("certificate"), "{stderr}\n{log}");
    assert!(!ok);
    assert!(stderr.contains("certificate"), "{stderr}");
    assert!(!stderr.contains("retrying"), "{stderr}");
    assert!(proxy.tunnels() > 0, "the proxy saw no CONNECT");

    // With it (a flag, or SSL_CERT_FILE), through the proxy: STS, IAM and the upload.
    let before = proxy.tunnels();
    let (ok, stderr) = run(&["--ca-bundle".as_ref(), ca.as_os_str()], &through);
    assert!(ok, "{stderr}");
    assert!(demo.emulator.object("through-the-proxy.txt").is_some());
    assert!(
        proxy.tunnels() > before,
        "the delivery did not go through the proxy"
    );

    std::fs::write(&file, "tunnelled again").unwrap();
    std::fs::rename(&file, dir.path().join("again.txt")).unwrap();
    std::fs::copy(dir.path().join("again.txt"), &file).unwrap();
    let env = [
        through[0].clone(),
        ("SSL_CERT_FILE", ca.display().to_string()),
        ("NO_PROXY", "127.0.0.1".to_owned()),
    ];
    let before = proxy.tunnels();
    let dest_text = std::fs::read_to_string(&dest).unwrap();
    std::fs::write(&dest, format!("prefix = \"direct/\"\n{dest_text}")).unwrap();
    let (ok, stderr) = run(&[], &env);
    assert!(ok, "{stderr}");
    assert!(
        demo.emulator
            .object("direct/through-the-proxy.txt")
            .is_some()
    );
    assert_eq!(
        proxy.tunnels(),
        before,
        "NO_PROXY=127.0.0.1 went through the proxy"
    );
}

/// `--resolve` sends Google's own host names, over HTTPS, to the emulator serving TLS: the
/// certificate is checked for each name against the CA given, and without that CA the
/// connection is refused as untrusted, in one line naming the certificate.
#[test]
fn resolve_keeps_https_and_checks_the_certificate_for_the_name() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tls = wif_push_emulator::Tls::generate().unwrap();
    let ca_pem = tls.ca_pem.clone();
    let demo = runtime
        .block_on(Demo::start(EmulatorConfig {
            tls: Some(tls),
            ..EmulatorConfig::demo()
        }))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let dest = dir.path().join("dest.toml");
    std::fs::write(&dest, common::dest_toml(&demo, "")).unwrap();
    let verify = |with_ca: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_host-test"));
        cmd.env_clear().arg("verify").arg("--config").arg(&dest);
        for (name, value) in &demo.env.vars {
            cmd.env(name, value);
        }
        for host in [
            "sts.googleapis.com",
            "iamcredentials.googleapis.com",
            "storage.googleapis.com",
        ] {
            cmd.arg("--resolve")
                .arg(format!("{host}:443={}", demo.emulator.addr()));
        }
        if with_ca {
            cmd.arg("--ca-bundle").arg(&ca);
        }
        cmd.output().unwrap()
    };
    let output = verify(true);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let receipt: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(receipt["status"], "delivered");
    assert_eq!(demo.emulator.objects().len(), 1);

    // Refused at once and said as a certificate refusal, never retried as a broken connection:
    // the refusal can land while the component is still writing the request's body, and the
    // host's answer is what names it (seen once as "the connection broke while sending").
    for _ in 0..5 {
        let output = verify(false);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}
