//! Puts the exact versions of the Rust peers the runner measures (`--peers`) in the
//! environment of the build, from the workspace's lockfile, so each JSON line names the peer's
//! version (`PEER_VERSION_<CRATE>`; "unknown" if the lockfile cannot be read).

use std::fs;
use std::path::Path;

const PEERS: [&str; 5] = [
    "tokio",
    "tokio-util",
    "crossbeam-channel",
    "rayon",
    "governor",
];

fn main() {
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = fs::read_to_string(&lock).unwrap_or_default();
    for peer in PEERS {
        let version = version_of(&text, peer).unwrap_or_else(|| "unknown".to_owned());
        let key = peer.to_uppercase().replace('-', "_");
        println!("cargo:rustc-env=PEER_VERSION_{key}={version}");
    }
}

/// The version of package `name` in a Cargo.lock (the first entry, if several).
fn version_of(lock: &str, name: &str) -> Option<String> {
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == format!("name = \"{name}\"") {
            let version = lines.next()?.trim().strip_prefix("version = \"")?;
            return Some(version.trim_end_matches('"').to_owned());
        }
    }
    None
}
