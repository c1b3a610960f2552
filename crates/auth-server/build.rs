//! Links the `auth-server` binary with packed relative relocations (RELR) on
//! Linux with glibc: its relocation table shrinks from about 520 KB to a few
//! KB, which the loader reads at every start and which then stays resident.
//! The binary stays position-independent (address-space layout
//! randomisation is kept). Needs GNU ld 2.38 or later and glibc 2.36 or
//! later where it runs; `AUTH_SERVER_NO_RELR=1` at build time leaves it out.

fn main() {
    println!("cargo:rerun-if-env-changed=AUTH_SERVER_NO_RELR");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" && std::env::var_os("AUTH_SERVER_NO_RELR").is_none() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
