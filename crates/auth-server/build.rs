//! Link settings of the `auth-server` binary on Linux with glibc.
//!
//! - Packed relative relocations (RELR): the relocation table shrinks from
//!   about 520 KB to a few KB, which the loader reads at every start and which
//!   then stays resident. The binary stays position-independent (address-space
//!   layout randomisation is kept). Needs GNU ld 2.38 or later (or LLD) and
//!   glibc 2.36 or later where it runs; `AUTH_SERVER_NO_RELR=1` at build time
//!   leaves it out.
//! - The functions a server runs first, together: `hot-functions.txt` lists
//!   the functions a start, sign-ups, sign-ins and refreshes ran (`cargo xtask
//!   hot-functions` writes it), and LLD's `--symbol-ordering-file` places them
//!   at the front of the code. The kernel maps code in 64 KiB windows around
//!   each page first run, so with the hot functions spread among the cold ones
//!   (the SQL and Redis drivers, the HTTP client, OAuth, passkeys) nearly all
//!   11 MB of code became resident; together they take about 2.3 MB. Names the
//!   binary does not have (a dependency or the compiler changed since the list
//!   was written) are passed over, so a stale list costs memory, never a
//!   build. Only where the linker is LLD: Rust's default on
//!   `x86_64-unknown-linux-gnu` since 1.90, unless `RUSTFLAGS` picks another;
//!   `AUTH_SERVER_NO_ORDER=1` at build time leaves it out.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=AUTH_SERVER_NO_RELR");
    println!("cargo:rerun-if-env-changed=AUTH_SERVER_NO_ORDER");
    println!("cargo:rerun-if-changed=hot-functions.txt");
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" {
        return;
    }
    if std::env::var_os("AUTH_SERVER_NO_RELR").is_none() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    if std::env::var_os("AUTH_SERVER_NO_ORDER").is_none() && links_with_lld() {
        let list = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join("hot-functions.txt");
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            list.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// Whether this build links with LLD: rustc 1.90 or later on
/// `x86_64-unknown-linux-gnu`, with no linker chosen in the flags.
fn links_with_lld() -> bool {
    if var("TARGET") != "x86_64-unknown-linux-gnu" {
        return false;
    }
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    if ["linker", "link-self-contained", "fuse-ld"]
        .iter()
        .any(|f| flags.contains(f))
    {
        return false;
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("-vV").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let minor = text
        .lines()
        .find_map(|l| l.strip_prefix("release: 1."))
        .and_then(|rest| rest.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    minor.is_some_and(|m| m >= 90)
}

/// An environment variable cargo sets for build scripts; empty if unset.
fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}
