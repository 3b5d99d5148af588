//! S3 sources against moto (`tests/peers/moto_aws.py --s3`, verifying every signature and IAM
//! policy): objects put with boto3 (one PUT with its CRC32C, multipart with a FULL_OBJECT and a
//! COMPOSITE CRC32C, none, 0 bytes, a key with spaces and non-ASCII, a dotted bucket, a prefix
//! of two listing pages) go through the component into the emulator's bucket, byte for byte.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use wif_push_bench::demo::Demo;
use wif_push_emulator::{AwsIdentity, EmulatorConfig};

struct Moto {
    child: Child,
    info: Value,
}

impl Moto {
    fn start() -> Moto {
        let mut child = Command::new(common::python())
            .arg(common::repo_root().join("tests/peers/moto_aws.py"))
            .arg("--s3")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let info = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        Moto { child, info }
    }

    fn text(&self, field: &str) -> String {
        self.info[field].as_str().unwrap().to_owned()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// The emulator, knowing moto's key as the pipeline's identity (its subject tokens pass the
/// partner's condition), and `host-test deliver` routed to both.
struct Setup {
    moto: Moto,
    demo: Demo,
    _runtime: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let moto = Moto::start();
        let mut config = EmulatorConfig::demo();
        config.identities.push(AwsIdentity {
            access_key_id: moto.text("access_key_id"),
            secret_access_key: moto.text("secret_access_key"),
            session_token: None,
            role_arn: "arn:aws:sts::111122223333:assumed-role/wif-push-sender/pipeline".into(),
        });
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let demo = runtime.block_on(Demo::start(config)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("dest.toml"),
            common::dest_toml(&demo, "prefix = \"in/\"\n"),
        )
        .unwrap();
        Setup {
            moto,
            demo,
            _runtime: runtime,
            dir,
        }
    }

    fn deliver(&self, sources: &[&str]) -> (bool, String, String) {
        let dest = self.dir.path().join("dest.toml");
        let mut args = vec![OsStr::new("deliver"), "--config".as_ref(), dest.as_os_str()];
        args.extend(sources.iter().map(OsStr::new));
        let output = self.command(&args).output().unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// `host-test ARGS` with moto's keys, routed to the emulator and to moto.
    fn command(&self, args: &[&OsStr]) -> Command {
        let mut cmd = common::host_test_against(&self.demo, args);
        let moto = format!("127.0.0.1:{}", self.moto.info["port"]);
        for host in [
            "exports.s3.us-east-1.amazonaws.com",
            "no-such-bucket.s3.us-east-1.amazonaws.com",
            "s3.us-east-1.amazonaws.com",
        ] {
            cmd.arg("--connect-to").arg(format!("{host}={moto}"));
        }
        cmd.env("AWS_ACCESS_KEY_ID", self.moto.text("access_key_id"))
            .env("AWS_SECRET_ACCESS_KEY", self.moto.text("secret_access_key"));
        cmd
    }

    /// The source object `bucket/key` arrived as `name`, byte for byte.
    fn arrived(&self, source: &str, name: &str) {
        let expected = &self.moto.info["objects"][source];
        let object = self
            .demo
            .emulator
            .object(name)
            .unwrap_or_else(|| panic!("{name} was not created"));
        assert_eq!(object.size, expected["size"].as_u64().unwrap(), "{name}");
        assert_eq!(
            object.sha256_hex,
            expected["sha256"].as_str().unwrap(),
            "{name}"
        );
    }
}

fn receipts(stdout: &str) -> BTreeMap<String, Value> {
    stdout
        .lines()
        .map(|line| {
            let receipt: Value = serde_json::from_str(line).unwrap();
            (receipt["name"].as_str().unwrap().to_owned(), receipt)
        })
        .collect()
}

#[test]
fn s3_objects_arrive_byte_for_byte_and_a_wrong_checksum_creates_nothing() {
    let setup = Setup::new();
    let (ok, stdout, stderr) = setup.deliver(&[
        "s3://exports/single/crc.bin",
        "s3://exports/multi/composite.bin",
        "s3://exports/plain/",
        "s3://exports.example/dotted.txt",
        "s3://exports/multi/full.bin",
    ]);
    // moto's FULL_OBJECT CRC32C does not match the object's bytes: that one must fail alone.
    assert!(!ok, "{stdout}");
    let receipts = receipts(&stdout);
    assert_eq!(receipts.len(), 6, "{stdout}\n{stderr}");
    setup.arrived("exports/single/crc.bin", "in/crc.bin");
    setup.arrived("exports/multi/composite.bin", "in/composite.bin");
    setup.arrived("exports/plain/none.bin", "in/none.bin");
    setup.arrived("exports/plain/empty.bin", "in/empty.bin");
    setup.arrived("exports/plain/naïve café 1.csv", "in/naïve café 1.csv");
    setup.arrived("exports.example/dotted.txt", "in/dotted.txt");

    let single = &receipts["in/crc.bin"]["source"];
    assert_eq!(single["uri"], "s3://exports/single/crc.bin");
    assert_eq!(single["checksum_type"], "FULL_OBJECT");
    assert!(single["checksum"].as_str().unwrap().starts_with("CRC32C "));
    assert!(single["etag"].as_str().unwrap().starts_with('"'));
    let composite = &receipts["in/composite.bin"];
    assert_eq!(composite["source"]["checksum_type"], "COMPOSITE");
    assert_eq!(composite["upload"], "resumable");

    assert!(setup.demo.emulator.object("in/full.bin").is_none());
    let line = stderr
        .lines()
        .find(|l| l.contains("s3://exports/multi/full.bin"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let actual = setup.moto.info["objects"]["exports/multi/full.bin"]["crc32c"]
        .as_str()
        .unwrap();
    let (reported, read) = line
        .split_once("the source's CRC32C is ")
        .and_then(|(_, rest)| rest.split_once(" but the bytes read have "))
        .unwrap_or_else(|| panic!("{line}"));
    assert!(read.starts_with(&format!("{actual};")), "{line}");
    assert_ne!(reported, actual, "{line}");
    assert!(line.contains("nothing was created"), "{line}");
    assert!(!stderr.contains(&setup.moto.text("secret_access_key")));
}

#[test]
fn a_prefix_is_listed_page_by_page_and_refusals_are_named() {
    let setup = Setup::new();
    let (ok, stdout, stderr) = setup.deliver(&["s3://exports/many/"]);
    assert!(ok, "{stderr}");
    let receipts = receipts(&stdout);
    assert_eq!(receipts.len(), 1003);
    assert!(receipts.contains_key("in/0000.txt") && receipts.contains_key("in/1002.txt"));
    let object = setup.demo.emulator.object("in/1002.txt").unwrap();
    assert_eq!(object.size, "object 1002\n".len() as u64);

    let (ok, _, stderr) = setup.deliver(&[
        "s3://exports/no/such.key",
        "s3://no-such-bucket/a",
        "s3://Bad_Bucket/a",
    ]);
    assert!(!ok);
    assert!(stderr.contains("NoSuchKey"), "{stderr}");
    assert!(stderr.contains("NoSuchBucket"), "{stderr}");
    assert!(stderr.contains("does not name a bucket"), "{stderr}");
    assert_eq!(
        stderr.lines().count(),
        5,
        "three errors, the summary, the total: {stderr}"
    );

    // The pipeline's identity may not read S3 (a profile whose role has no S3 permission):
    // each call names the permission it lacks; nothing is created.
    let config = setup.dir.path().join("aws-config");
    std::fs::write(
        &config,
        format!(
            "[profile no-s3]\nrole_arn = {}\nsource_profile = keys\n",
            setup.moto.info["roles"]["no-s3"].as_str().unwrap()
        ),
    )
    .unwrap();
    let credentials = setup.dir.path().join("aws-credentials");
    std::fs::write(
        &credentials,
        format!(
            "[keys]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            setup.moto.text("access_key_id"),
            setup.moto.text("secret_access_key")
        ),
    )
    .unwrap();
    let dest = setup.dir.path().join("dest.toml");
    // The first route for a host wins: AWS STS is moto's here, not the emulator's.
    let moto_sts = format!(
        "sts.us-east-1.amazonaws.com=127.0.0.1:{}",
        setup.moto.info["port"]
    );
    let args = [
        OsStr::new("deliver"),
        "--config".as_ref(),
        dest.as_os_str(),
        "--connect-to".as_ref(),
        moto_sts.as_ref(),
        "s3://exports/single/crc.bin".as_ref(),
        "s3://exports/plain/".as_ref(),
    ];
    let output = setup
        .command(&args)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_PROFILE", "no-s3")
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("GetObject") && stderr.contains("needs s3:GetObject"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ListObjectsV2") && stderr.contains("needs s3:ListBucket"),
        "{stderr}"
    );
    assert!(!stderr.contains(&setup.moto.text("secret_access_key")));
    assert!(setup.demo.emulator.object("in/crc.bin").is_none());
}

/// `POST body` to the sidecar at `addr`; the status and the body of the answer.
fn post(addr: &str, content_type: &str, body: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /v1/copy HTTP/1.1\r\nhost: localhost\r\ncontent-type: {content_type}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

#[test]
fn the_sidecar_copies_one_s3_object_a_request() {
    let setup = Setup::new();
    let dest = setup.dir.path().join("dest.toml");
    let args = [
        OsStr::new("serve"),
        "--config".as_ref(),
        dest.as_os_str(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
    ];
    let mut child = setup
        .command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = common::served_at(&mut child).to_string();

    let json = "application/json";
    let (status, body) = post(
        &addr,
        json,
        r#"{"source": "s3://exports/single/crc.bin", "name": "copied/crc.bin", "metadata": {"batch": "17"}}"#,
    );
    assert_eq!(status, 201, "{body}");
    assert!(
        body.contains(r#""uri":"s3://exports/single/crc.bin""#),
        "{body}"
    );
    setup.arrived("exports/single/crc.bin", "in/copied/crc.bin");
    let object = setup.demo.emulator.object("in/copied/crc.bin").unwrap();
    assert_eq!(object.metadata.get("batch").map(String::as_str), Some("17"));

    let (status, body) = post(
        &addr,
        json,
        r#"{"source": "s3://exports/multi/full.bin", "name": "full.bin"}"#,
    );
    assert_ne!(status, 201, "{body}");
    assert!(body.contains("nothing was created"), "{body}");
    assert!(setup.demo.emulator.object("in/full.bin").is_none());
    let (status, _) = post(
        &addr,
        json,
        r#"{"source": "s3://exports/plain/", "name": "x"}"#,
    );
    assert_eq!(status, 400);
    let (status, _) = post(
        &addr,
        "text/plain",
        r#"{"source": "s3://exports/a", "name": "x"}"#,
    );
    assert_eq!(status, 415);

    common::sigterm(&child);
    assert!(child.wait().unwrap().success());
}

/// The emulator's S3: a read that breaks mid-object resumes through the component on the same
/// version; a bucket in another region is followed there; a composite checksum is not taken for
/// the object's; a FULL_OBJECT CRC32C that disagrees with the bytes creates nothing.
#[test]
fn the_emulated_s3_breaks_a_read_and_the_component_resumes_it() {
    use sha2::Digest as _;
    use wif_push_emulator::{Endpoint, S3Checksum, S3Object};

    let big: Vec<u8> = (0..20u32 << 20)
        .map(|i| (i.wrapping_mul(7) % 251) as u8)
        .collect();
    let mut config = EmulatorConfig::demo();
    config.s3_objects = vec![
        S3Object {
            break_after: Some(5 << 20),
            // The first GetObject is the plan's, which learns the size and reads no body.
            break_skip: 1,
            ..S3Object::new("exports", "big.bin", big.clone())
        },
        S3Object {
            checksum: S3Checksum::Composite { parts: 3 },
            ..S3Object::new("exports", "composite.bin", b"made of parts".to_vec())
        },
        S3Object {
            checksum: S3Checksum::WrongFullObjectCrc32c,
            ..S3Object::new("exports", "wrong.bin", b"disagrees".to_vec())
        },
        S3Object {
            region: "eu-west-1".into(),
            ..S3Object::new("far-away", "x.txt", b"from Ireland".to_vec())
        },
    ];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let demo = runtime.block_on(Demo::start(config)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest.toml");
    std::fs::write(&dest, common::dest_toml(&demo, "")).unwrap();
    let args = [
        OsStr::new("deliver"),
        "--config".as_ref(),
        dest.as_os_str(),
        "s3://exports/big.bin".as_ref(),
        "s3://exports/composite.bin".as_ref(),
        "s3://far-away/x.txt".as_ref(),
        "s3://exports/wrong.bin".as_ref(),
    ];
    let mut cmd = common::host_test_against(&demo, &args);
    for host in [
        "exports.s3.us-east-1.amazonaws.com",
        "far-away.s3.us-east-1.amazonaws.com",
        "far-away.s3.eu-west-1.amazonaws.com",
    ] {
        cmd.arg("--connect-to")
            .arg(format!("{host}={}", demo.emulator.addr()));
    }
    let output = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert_eq!(stdout.lines().count(), 3, "{stdout}\n{stderr}");

    let object = demo
        .emulator
        .object("big.bin")
        .unwrap_or_else(|| panic!("big.bin is not in the bucket:\n{stdout}\n{stderr}"));
    assert_eq!(object.sha256_hex, hex::encode(sha2::Sha256::digest(&big)));
    assert!(stderr.contains("the read broke at byte"), "{stderr}");
    let resumed = demo
        .emulator
        .log()
        .into_iter()
        .filter(|e| e.endpoint == Endpoint::S3 && e.status == 206)
        .count();
    assert_eq!(resumed, 1);
    let receipts = receipts(&stdout);
    assert_eq!(
        receipts["composite.bin"]["source"]["checksum_type"],
        "COMPOSITE"
    );
    assert!(demo.emulator.object("x.txt").is_some(), "{stderr}");
    assert!(demo.emulator.object("wrong.bin").is_none());
    assert!(
        stderr.contains("the source's CRC32C is AAAAAA=="),
        "{stderr}"
    );
}

/// Through the library (`plan-s3`, `deliver-s3`) into fake-gcs-server, read back with
/// google-cloud-storage: the objects moto holds arrive byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_objects_read_back_identically_from_fake_gcs_server() {
    use wif_push_emulator::Emulator;
    use wif_push_host::outbound::{Outbound, Policy, Route};
    use wif_push_host::runtime::{GuestEnv, Runtime, Session, Settings, delivery};

    let moto = tokio::task::spawn_blocking(Moto::start).await.unwrap();
    let gcs = common::FakeGcs::start("partner-inbox");
    let mut config = EmulatorConfig::demo();
    config.provider_id = "aws-sender".into();
    config.identities.push(AwsIdentity {
        access_key_id: moto.text("access_key_id"),
        secret_access_key: moto.text("secret_access_key"),
        session_token: None,
        role_arn: "arn:aws:sts::111122223333:assumed-role/wif-push-sender/pipeline".into(),
    });
    let google = Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let routes: Vec<Route> = [
        format!("sts.googleapis.com={}", google.addr()),
        format!("iamcredentials.googleapis.com={}", google.addr()),
        format!("storage.googleapis.com={}", gcs.addr),
        format!(
            "exports.s3.us-east-1.amazonaws.com=127.0.0.1:{}",
            moto.info["port"]
        ),
    ]
    .iter()
    .map(|r| r.parse().unwrap())
    .collect();
    let (key, secret) = (moto.text("access_key_id"), moto.text("secret_access_key"));
    let env = GuestEnv::aws(|name| match name {
        "AWS_ACCESS_KEY_ID" => Some(key.clone()),
        "AWS_SECRET_ACCESS_KEY" => Some(secret.clone()),
        _ => None,
    });
    let runtime = Runtime::load(None).unwrap();
    let outbound = Outbound::new(Policy::new(&[], routes)).unwrap();
    let mut session = Session::new(&runtime, &env, outbound).await.unwrap();
    let c = google.config();
    let destination = Settings {
        project_number: Some(c.project_number.clone()),
        pool_id: Some(c.pool_id.clone()),
        provider_id: Some(c.provider_id.clone()),
        service_account: Some(c.service_account.clone()),
        bucket: Some("partner-inbox".into()),
        prefix: Some("from-s3/".into()),
        aws_region: Some("us-east-1".into()),
        ..Default::default()
    };
    let mut planned = Vec::new();
    for uri in [
        "s3://exports/plain/",
        "s3://exports/single/crc.bin",
        "s3://exports/multi/composite.bin",
    ] {
        planned.extend(session.plan_s3(&destination, uri).await.unwrap());
    }
    assert_eq!(planned.len(), 5, "{planned:?}");
    let mut names = Vec::new();
    for item in &planned {
        let object = delivery::Object {
            name: item.name.clone(),
            size: item.size,
            content_type: None,
            metadata: Vec::new(),
            session: None,
        };
        let receipt = session
            .deliver_s3(&destination, &item.source, &object)
            .await
            .unwrap_or_else(|e| panic!("{}: {e:#}", item.source));
        assert_eq!(receipt.source.as_ref().unwrap().uri, item.source);
        let key = item.source.strip_prefix("s3://").unwrap().to_owned();
        names.push((receipt.name, key));
    }
    let mut read_back = Command::new(common::python());
    read_back
        .arg(common::repo_root().join("tests/peers/gcs_read_back.py"))
        .arg(format!("http://{}", gcs.addr))
        .arg("partner-inbox")
        .args(names.iter().map(|(name, _)| name));
    let out = tokio::task::spawn_blocking(move || read_back.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored: Value = serde_json::from_slice(&out.stdout).unwrap();
    for (name, key) in &names {
        let expected = &moto.info["objects"][key];
        assert_eq!(stored[name]["size"], expected["size"], "{name}");
        assert_eq!(stored[name]["sha256"], expected["sha256"], "{name}");
    }
    tokio::task::spawn_blocking(move || drop(moto))
        .await
        .unwrap();
}
