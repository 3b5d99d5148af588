//! Helpers shared by the emulator's tests, which drive it over real HTTP.
#![allow(dead_code)]

pub mod gcs;
pub mod tokens;

use wif_push_emulator::{Emulator, EmulatorConfig};

pub const SA: &str = "uploader@partner-project.iam.gserviceaccount.com";

pub async fn start(config: EmulatorConfig) -> Emulator {
    Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}
