//! `cargo xtask hot-functions`: writes `crates/auth-server/hot-functions.txt`,
//! the functions the release `auth-server` runs in a start and a short
//! session of sign-ups, sign-ins and refreshes (SQLite, emailpass), which its
//! link places together (see the crate's `build.rs`). The server runs under
//! valgrind's callgrind, which records every function run, however briefly;
//! four clients at once drive it over keep-alive connections, as a load does.
//!
//! `cargo xtask hot-functions --check` says how many of the listed names the
//! release binary has: a dependency or compiler update renames functions,
//! and the list is then written again.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{root, run, target_dir};

/// The list, beside the build script that passes it to the linker.
fn list_path() -> PathBuf {
    root().join("crates/auth-server/hot-functions.txt")
}

fn release_binary() -> Result<PathBuf, String> {
    Ok(target_dir()?.join("release/auth-server"))
}

/// Writes the list from a recorded session.
pub(crate) fn write() -> Result<(), String> {
    run("cargo", &["build", "--release", "-p", "auth-server"], &[])?;
    let bin = release_binary()?;
    let dir = std::env::temp_dir().join(format!("auth-hot-functions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let recorded = record(&bin, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let names = recorded?;
    let text: String = names.iter().map(|n| format!("{n}\n")).collect();
    std::fs::write(list_path(), text).map_err(|e| format!("writing the list: {e}"))?;
    eprintln!(
        "{}: {} functions; build the release binary again to place them",
        list_path().display(),
        names.len()
    );
    Ok(())
}

/// Counts the listed names the release binary defines.
pub(crate) fn check() -> Result<(), String> {
    let bin = release_binary()?;
    let listed = std::fs::read_to_string(list_path()).map_err(|e| format!("the list: {e}"))?;
    let out = Command::new("nm")
        .arg("--defined-only")
        .arg(&bin)
        .output()
        .map_err(|e| format!("cannot run nm (binutils): {e}"))?;
    if !out.status.success() {
        return Err(format!("nm {} failed ({})", bin.display(), out.status));
    }
    let defined: BTreeSet<&str> = std::str::from_utf8(&out.stdout)
        .map_err(|e| format!("nm's output: {e}"))?
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    let names: Vec<&str> = listed.lines().filter(|l| !l.is_empty()).collect();
    let found = names.iter().filter(|n| defined.contains(*n)).count();
    println!(
        "hot-functions.txt: {found} of {} listed functions found in {} \
         (under 90%: `cargo xtask hot-functions` writes the list again)",
        names.len(),
        bin.display()
    );
    Ok(())
}

/// The server under callgrind, killed if still running when dropped.
struct Recorded(Child);

impl Drop for Recorded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `bin` under callgrind through a session; the functions of `bin` it
/// ran, sorted.
fn record(bin: &Path, dir: &Path) -> Result<BTreeSet<String>, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("a free port: {e}"))?
        .port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let config = dir.join("auth.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\njwt_secret = \"hot-functions-secret-0123456789abcdef\"\n\
             [server]\nlisten = \"{addr}\"\n\
             [store]\nurl = \"sqlite://{db}\"\n[state]\nurl = \"sqlite://{db}\"\n\
             [[providers]]\nresolve = \"emailpass\"\nid = \"emailpass\"\n",
            db = dir.join("auth.db").display()
        ),
    )
    .map_err(|e| format!("writing the config: {e}"))?;
    let out = dir.join("callgrind.out");
    let mut server = Recorded(
        Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg("--demangle=no")
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(bin)
            .args(["serve", "--config"])
            .arg(&config)
            // Any value keeps the binary from starting itself again with
            // its own (which valgrind would not follow).
            .env("GLIBC_TUNABLES", "glibc.malloc.top_pad=0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run valgrind (apt-get install valgrind): {e}"))?,
    );
    let started = Instant::now();
    while Client::connect(addr)
        .and_then(|mut c| c.call("GET", "/health", None, None))
        .is_err()
    {
        if started.elapsed() > Duration::from_secs(180) {
            return Err("the server did not start under valgrind".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    session(addr)?;
    // SIGINT: the server shuts down and callgrind writes what it recorded.
    let pid = server.0.id().to_string();
    run("kill", &["-INT", &pid], &[])?;
    let status = server
        .0
        .wait()
        .map_err(|e| format!("waiting for the server: {e}"))?;
    if !status.success() {
        return Err(format!("the server ended with {status}"));
    }
    let text = std::fs::read_to_string(&out).map_err(|e| format!("callgrind's output: {e}"))?;
    let names = functions_run(&text, "/auth-server");
    if names.is_empty() {
        return Err("callgrind recorded no function of auth-server".into());
    }
    Ok(names)
}

/// Four clients at once, each on one keep-alive connection: a sign-up, three
/// sign-ins, a wrong password, three refreshes, a session and its end; then
/// an unknown e-mail, a bad token and an unknown route.
fn session(addr: SocketAddr) -> Result<(), String> {
    let clients: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || -> Result<(), String> {
                let mut c = Client::connect(addr).map_err(|e| e.to_string())?;
                let creds =
                    format!(r#"{{"email":"hot-{i}@example.com","password":"Hot-functions-{i}"}}"#);
                let wrong = format!(r#"{{"email":"hot-{i}@example.com","password":"wrong"}}"#);
                c.expect(
                    "POST",
                    "/auth/customer/emailpass/register",
                    Some(&creds),
                    None,
                    200,
                )?;
                let mut token = String::new();
                for _ in 0..3 {
                    let body =
                        c.expect("POST", "/auth/customer/emailpass", Some(&creds), None, 200)?;
                    token = token_in(&body)?;
                }
                c.expect("POST", "/auth/customer/emailpass", Some(&wrong), None, 401)?;
                for _ in 0..3 {
                    let body = c.expect("POST", "/auth/token/refresh", None, Some(&token), 200)?;
                    token = token_in(&body)?;
                }
                c.expect("POST", "/auth/session", None, Some(&token), 200)?;
                c.expect("DELETE", "/auth/session", None, None, 200)?;
                Ok(())
            })
        })
        .collect();
    for client in clients {
        client
            .join()
            .map_err(|_| "a client panicked".to_owned())??;
    }
    let mut c = Client::connect(addr).map_err(|e| e.to_string())?;
    let unknown = r#"{"email":"nobody@example.com","password":"Hot-functions-x"}"#;
    c.expect("POST", "/auth/customer/emailpass", Some(unknown), None, 401)?;
    c.expect(
        "POST",
        "/auth/token/refresh",
        None,
        Some("not.a.token"),
        401,
    )?;
    c.expect("GET", "/no-such-route", None, None, 404)?;
    Ok(())
}

/// Names of the functions with a cost in callgrind's `text` whose object's
/// path ends with `object`. Names are compressed: `fn=(7) name` the first
/// time, `fn=(7)` after; objects likewise (`ob=`, and `cob=` of callees).
fn functions_run(text: &str, object: &str) -> BTreeSet<String> {
    let mut objects: HashMap<&str, &str> = HashMap::new();
    let mut names: HashMap<&str, &str> = HashMap::new();
    let mut ran: BTreeSet<&str> = BTreeSet::new();
    let mut in_object = false;
    for line in text.lines() {
        let (key, rest) = match line.split_once('=') {
            Some((k @ ("ob" | "cob" | "fn" | "cfn"), rest)) => (k, rest),
            _ => continue,
        };
        let (id, name) = match rest.split_once(' ') {
            Some((id, name)) => (id, Some(name)),
            None => (rest, None),
        };
        match key {
            "ob" | "cob" => {
                if let Some(name) = name {
                    objects.insert(id, name);
                }
                if key == "ob" {
                    in_object = objects.get(id).is_some_and(|o| o.ends_with(object));
                }
            }
            _ => {
                if let Some(name) = name {
                    names.insert(id, name);
                }
                if key == "fn" && in_object {
                    ran.insert(id);
                }
            }
        }
    }
    ran.iter()
        .filter_map(|id| names.get(id))
        // Unnamed code (`0x…`) and callgrind's own entries (`(below main)`).
        .filter(|n| !n.starts_with("0x") && !n.starts_with('('))
        // A recursive call's level (`name'2`) is not part of the name.
        .map(|n| match n.rsplit_once('\'') {
            Some((name, level)) if level.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => n,
        })
        .map(str::to_owned)
        .collect()
}

/// The `token` of an answer's body.
fn token_in(body: &str) -> Result<String, String> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["token"].as_str().map(str::to_owned))
        .ok_or_else(|| format!("no token in {body}"))
}

/// A keep-alive HTTP/1.1 connection, with the last cookie it was given.
struct Client(BufReader<TcpStream>, Option<String>);

impl Client {
    fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        // Slow under valgrind: a hash takes seconds.
        stream.set_read_timeout(Some(Duration::from_secs(300)))?;
        Ok(Client(BufReader::new(stream), None))
    }

    /// The status and body of one request.
    fn call(
        &mut self,
        method: &str,
        path: &str,
        json: Option<&str>,
        bearer: Option<&str>,
    ) -> std::io::Result<(u16, String)> {
        let body = json.unwrap_or("");
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n",
            body.len()
        );
        if json.is_some() {
            request.push_str("Content-Type: application/json\r\n");
        }
        if let Some(token) = bearer {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if let Some(cookie) = &self.1 {
            request.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        self.0.get_mut().write_all(request.as_bytes())?;
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
        let mut line = String::new();
        self.0.read_line(&mut line)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no status line"))?;
        let mut length = 0;
        loop {
            line.clear();
            self.0.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().map_err(|_| bad("content-length"))?;
            } else if name.eq_ignore_ascii_case("set-cookie") {
                self.1 = value.split(';').next().map(|c| c.trim().to_owned());
            }
        }
        let mut body = vec![0; length];
        self.0.read_exact(&mut body)?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    fn expect(
        &mut self,
        method: &str,
        path: &str,
        json: Option<&str>,
        bearer: Option<&str>,
        want: u16,
    ) -> Result<String, String> {
        let (status, body) = self
            .call(method, path, json, bearer)
            .map_err(|e| format!("{method} {path}: {e}"))?;
        if status == want {
            Ok(body)
        } else {
            Err(format!("{method} {path}: {status} (wanted {want}): {body}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::functions_run;

    #[test]
    fn functions_run_by_the_object_are_read_with_their_compressed_names() {
        let text = "\
ob=(1) /lib/libc.so.6
fn=(1) memcpy
0 5
cfn=(2) helper
cob=(2) /target/release/auth-server
calls=1 0
0 3
ob=(2)
fn=(2)
0 7
fn=(3) main
0 1
fn=(6) main'2
0 1
fn=(7) again'2
0 1
fn=(4) 0x0000000000001234
0 1
ob=(1)
fn=(1)
0 2
fn=(5) only_in_libc
0 1
";
        let names: Vec<String> = functions_run(text, "/auth-server").into_iter().collect();
        assert_eq!(names, ["again", "helper", "main"]);
    }
}
