//! Builds the wif-push component for `wasm32-wasip2` with the project's own cargo, into a target
//! directory of its own (so this nested cargo never waits on the outer one's lock), and tells
//! the host where it is. Nothing is built by hand.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    for path in ["src", "wit", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    println!("cargo:rerun-if-env-changed=WIF_PUSH_COMPONENT");

    // A prebuilt component may be supplied instead (e.g. by a packager).
    if let Ok(path) = env::var("WIF_PUSH_COMPONENT") {
        println!("cargo:rustc-env=WIF_PUSH_COMPONENT={path}");
        return;
    }

    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("component");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--profile",
            "component",
            "--lib",
            "-p",
            "wif-push",
            "--target",
            "wasm32-wasip2",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
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
             If the target is missing, run: rustup target add wasm32-wasip2"
        );
    }
    let wasm = target_dir.join("wasm32-wasip2/component/wif_push.wasm");
    assert!(
        wasm.exists(),
        "the component build did not produce {}",
        wasm.display()
    );
    println!("cargo:rustc-env=WIF_PUSH_COMPONENT={}", wasm.display());
}
