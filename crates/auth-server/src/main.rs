//! The `auth-server` binary: the library's command line.

fn main() -> std::process::ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    malloc_settings::apply();
    auth_server::main()
}

/// glibc's malloc with a fixed trim and mmap threshold and no top padding, so
/// memory freed after a load goes back to the system.
///
/// By default glibc raises both thresholds as large blocks are freed, after
/// which freed memory stays in the process's arenas. Its settings are read
/// from `GLIBC_TUNABLES` when a process starts and cannot be changed later
/// without `mallopt` (unsafe code, which this workspace forbids). So the
/// binary starts itself again, once, with them set: same process id,
/// arguments and environment plus `GLIBC_TUNABLES`. A `GLIBC_TUNABLES` set by
/// the operator is kept as it is, and if the new start fails the server runs
/// on with glibc's defaults.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod malloc_settings {
    use std::os::unix::process::CommandExt;

    /// The mmap threshold at 128 KiB (glibc's starting value) kept fixed,
    /// and the heap trimmed once 64 KiB are free at its top, with no padding
    /// kept (measured: about 0.2 MiB less resident after a login load).
    const TUNABLES: &str = "glibc.malloc.trim_threshold=65536:glibc.malloc.mmap_threshold=131072:glibc.malloc.top_pad=0";

    pub(super) fn apply() {
        if std::env::var_os("GLIBC_TUNABLES").is_some() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
        // `exec` only returns on failure: then go on as we are.
        let _failed = std::process::Command::new(&exe)
            .arg0(arg0)
            .args(args)
            .env("GLIBC_TUNABLES", TUNABLES)
            .exec();
    }
}
