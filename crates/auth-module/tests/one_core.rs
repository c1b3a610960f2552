//! Two semver-incompatible copies of `auth-module` in one dependency graph
//! would hold two provider registries, and providers registered in one would
//! silently never appear in the other. Cargo refuses such a graph because of
//! the manifest's `links` key: this test builds one (this crate beside a
//! `0.2.0` of the same name) and checks that resolution fails, saying what
//! to do.

use std::path::Path;
use std::process::Command;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

#[test]
fn two_incompatible_cores_are_refused_at_build_time() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let links = std::fs::read_to_string(here.join("Cargo.toml"))
        .expect("our manifest")
        .lines()
        .find_map(|l| {
            l.strip_prefix("links = ")
                .map(|v| v.trim_matches('"').to_owned())
        })
        .expect("auth-module declares `links`");
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(
        &root.join("core2/Cargo.toml"),
        &format!(
            "[package]\nname = \"auth-module\"\nversion = \"0.2.0\"\nedition = \"2021\"\n\
             links = \"{links}\"\nbuild = \"build.rs\"\n"
        ),
    );
    write(&root.join("core2/build.rs"), "fn main() {}\n");
    write(&root.join("core2/src/lib.rs"), "");
    write(
        &root.join("app/Cargo.toml"),
        &format!(
            "[package]\nname = \"app\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n\
             [dependencies]\nauth-module = {{ path = {:?} }}\n\
             core2 = {{ package = \"auth-module\", path = \"../core2\" }}\n",
            here.display().to_string()
        ),
    );
    write(&root.join("app/src/main.rs"), "fn main() {}\n");
    // Our lock file: resolution needs no network.
    let lock = here.join("../../Cargo.lock");
    std::fs::copy(&lock, root.join("app/Cargo.lock")).expect("copy the lock file");

    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--offline", "--format-version", "1"])
        .current_dir(root.join("app"))
        .output()
        .expect("run cargo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "two cores resolved: {stderr}");
    assert!(
        stderr.contains(&format!("links to the native library `{links}`"))
            && stderr.contains("auth-module v0.1.0")
            && stderr.contains(
                "Only one package in the dependency graph may specify the same links value"
            ),
        "{stderr}"
    );
}
