//! No build work: this script exists for the `links` key of the manifest,
//! which Cargo only accepts with a build script. That key makes Cargo refuse
//! a dependency graph holding two semver-incompatible copies of this crate
//! (two provider registries, where providers would silently go missing):
//! depend on one version of `auth-module` everywhere (`cargo tree -i
//! auth-module` shows who pulls which).

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
}
