//! Builds the wif-push component for `wasm32-wasip2` with the project's own cargo, into a target
//! directory of its own (so this nested cargo never waits on the outer one's lock), and tells
//! the host where it is: the sidecar, and the sidecar with a token store. Nothing is built by
//! hand.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = repo_root(&manifest_dir);
    for path in ["src", "wit", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    println!("cargo:rerun-if-env-changed=WIF_PUSH_COMPONENT");

    println!("cargo:rerun-if-env-changed=WIF_PUSH_KEYVALUE_COMPONENT");

    // Prebuilt components may be supplied instead (e.g. by a packager).
    if let (Ok(path), Ok(keyvalue)) = (
        env::var("WIF_PUSH_COMPONENT"),
        env::var("WIF_PUSH_KEYVALUE_COMPONENT"),
    ) {
        println!("cargo:rustc-env=WIF_PUSH_COMPONENT={path}");
        println!("cargo:rustc-env=WIF_PUSH_KEYVALUE_COMPONENT={keyvalue}");
        return;
    }

    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("component");
    ensure_wasm_target();
    // The sidecar with a token store (wasi:keyvalue), and the sidecar as `wasmtime serve` runs
    // it. Cargo keeps both feature sets' builds apart in one target directory; both outputs land
    // at the same path, so each is copied aside, and the plain one, built last, stays there.
    for (variable, features, name) in [
        (
            "WIF_PUSH_KEYVALUE_COMPONENT",
            Some("wasi-keyvalue"),
            "wif_push-keyvalue.wasm",
        ),
        ("WIF_PUSH_COMPONENT", None, "wif_push-sidecar.wasm"),
    ] {
        let wasm = build(&root, &target_dir, features);
        let kept = wasm.with_file_name(name);
        std::fs::copy(&wasm, &kept).expect("copy the built component aside");
        println!("cargo:rustc-env={variable}={}", kept.display());
    }
}

/// Builds the component with `features` and returns where cargo put it.
fn build(root: &Path, target_dir: &Path, features: Option<&str>) -> PathBuf {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args([
            "build",
            "--profile",
            "component",
            "--lib",
            "-p",
            "wif-push",
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(target_dir);
    if let Some(features) = features {
        cmd.args(["--features", features]);
    }
    // The outer build's flags are for the host, not for wasm.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("run cargo to build the component");
    if !status.success() {
        panic!(
            "building the wif-push component for wasm32-wasip2 failed (see above). \
             If the target is missing, run: rustup target add {TARGET}"
        );
    }
    let wasm = target_dir.join(TARGET).join("component/wif_push.wasm");
    assert!(
        wasm.exists(),
        "the component build did not produce {}",
        wasm.display()
    );
    wasm
}

/// The repository's root, where the component's package is: the nearest directory above this
/// crate that holds the WIT (`wit/`) and a `Cargo.toml`.
fn repo_root(manifest_dir: &Path) -> PathBuf {
    manifest_dir
        .ancestors()
        .skip(1)
        .find(|dir| dir.join("wit").is_dir() && dir.join("Cargo.toml").is_file())
        .unwrap_or_else(|| {
            panic!(
                "no directory above {} holds the component (wit/ and Cargo.toml)",
                manifest_dir.display()
            )
        })
        .to_path_buf()
}

/// Adds the wasm32-wasip2 target to the toolchain building this crate when it lacks it, so a
/// fresh machine with only rustup and stable Rust builds as it is. rustup does not do this by
/// itself on `cargo build`, even with the target listed in a rust-toolchain.toml.
fn ensure_wasm_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if sysroot.is_some_and(|root| root.join("lib/rustlib").join(TARGET).is_dir()) {
        return;
    }
    println!(
        "cargo:warning=the {TARGET} Rust target is missing; adding it with `rustup target add {TARGET}`"
    );
    let mut rustup = Command::new("rustup");
    rustup.args(["target", "add", TARGET]);
    // The toolchain this build runs on (set by rustup's proxies), not the default one.
    if let Ok(toolchain) = env::var("RUSTUP_TOOLCHAIN") {
        rustup.args(["--toolchain", &toolchain]);
    }
    match rustup.status() {
        Ok(status) if status.success() => {}
        Ok(_) | Err(_) => panic!(
            "the {TARGET} Rust target is missing and `rustup target add {TARGET}` did not add \
             it; install it with rustup (or point WIF_PUSH_COMPONENT at a built component)"
        ),
    }
}
