//! Every committed fuzz input (`fuzz/corpus/TARGET/`) through the check its fuzz target runs,
//! so each is a regression test on stable Rust, without libFuzzer (README.md, Fuzzing).

use std::path::Path;

#[path = "../fuzz/src/lib.rs"]
mod checks;

fn fuzz_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz"))
}

#[test]
fn every_corpus_input_passes_its_check() {
    for (target, check) in checks::TARGETS {
        let folder = fuzz_dir().join("corpus").join(target);
        let mut inputs: Vec<_> = std::fs::read_dir(&folder)
            .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
            .map(|entry| entry.expect("a corpus entry").path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{target} has no corpus");
        for input in inputs {
            let data = std::fs::read(&input).expect("a corpus input");
            let run = std::panic::catch_unwind(|| check(&data));
            assert!(run.is_ok(), "{} fails its check", input.display());
        }
    }
}

/// The fuzz crate has a binary for every check, and a check for every binary.
#[test]
fn every_target_has_a_fuzz_binary() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let binaries = manifest.matches("[[bin]]").count();
    assert_eq!(
        binaries,
        checks::TARGETS.len(),
        "fuzz/Cargo.toml's [[bin]]s"
    );
    for (target, _) in checks::TARGETS {
        let source = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        let text = std::fs::read_to_string(&source).expect("a fuzz target");
        assert!(
            text.contains(&format!("wif_push_fuzz::{target}(")),
            "{}",
            source.display()
        );
    }
}
