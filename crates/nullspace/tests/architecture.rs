//! The dependency rules of the architecture, checked over `cargo metadata`: data flows api → control →
//! node → runtime → guest, and no crate reaches around another.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Normal (non-dev) dependencies of each workspace crate.
fn workspace_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    let mut crates = BTreeMap::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let name = package["name"].as_str().expect("name").to_owned();
        let deps = package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|dep| dep["kind"].is_null())
            .map(|dep| dep["name"].as_str().expect("dep name").to_owned())
            .collect();
        crates.insert(name, deps);
    }
    crates
}

#[test]
fn layers_depend_only_downwards() {
    let crates = workspace_dependencies();
    let deps = |name: &str| crates.get(name).unwrap_or_else(|| panic!("crate {name} exists"));
    let ours = |name: &str| deps(name).iter().filter(|d| d.starts_with("nullspace")).cloned().collect::<BTreeSet<_>>();

    let set = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<BTreeSet<_>>();
    assert_eq!(ours("nullspace-types"), set(&[]), "types depend on nothing of ours");
    assert_eq!(ours("nullspace-guest"), set(&["nullspace-types"]), "the guest depends on no server crate");
    assert_eq!(ours("nullspace-runtime"), set(&[]), "runtimes know nothing above them");
    // Images know nothing of sandboxes; they share only the leaf crate's path rules (`rel_path`), so a
    // Dockerfile path and a files-API path are cleaned by the same code.
    assert_eq!(ours("nullspace-image"), set(&["nullspace-types"]), "images know nothing of sandboxes");
    assert_eq!(ours("nullspace-node"), set(&["nullspace-types", "nullspace-runtime", "nullspace-image"]));
    assert_eq!(
        ours("nullspace-server"),
        set(&["nullspace-types", "nullspace-node"]),
        "the control plane reaches runtimes and images only through the node"
    );
    assert!(
        !ours("nullspace-client").iter().any(|d| d != "nullspace-types"),
        "the client speaks the wire protocol only"
    );
    assert_eq!(ours("nullspace-codegw"), set(&["nullspace-types"]), "the gateway in a sandbox knows only the wire");
    assert_eq!(ours("nullspace-desktopd"), set(&["nullspace-types"]), "the desktop daemon knows only the wire");
}

#[test]
fn only_the_binaries_use_clap_and_anyhow() {
    // The CLI, the code-interpreter gateway and the desktop daemon (programs of their own inside
    // sandboxes) parse command lines; every library crate returns typed errors and takes typed options.
    for (name, deps) in workspace_dependencies() {
        if name == "nullspace" || name == "nullspace-codegw" || name == "nullspace-desktopd" {
            continue;
        }
        assert!(!deps.contains("clap"), "{name} must not depend on clap");
        assert!(!deps.contains("anyhow"), "{name} must not depend on anyhow");
    }
}
