//! The command line: `serve`, `providers`, `check-config`, shared by the
//! `auth-server` binary and any binary built on this crate ([`Server`]).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use auth_http::AuthService;
use axum::Router;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Medusa-compatible authentication server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the auth routes.
    Serve {
        /// Configuration file (TOML or JSON). Without it: SQLite at ./auth.db, emailpass, 127.0.0.1:9000.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen address, overriding `[server] listen`.
        #[arg(long)]
        listen: Option<String>,
    },
    /// List the provider kinds linked into this build.
    Providers,
    /// Check a configuration file and exit.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Print the OpenAPI 3.1 document of the routes this server serves.
    Openapi,
    /// Read the audit log of the configured identity store.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Import a Medusa 2.x database's auth identities into the configured
    /// store (ids, timestamps, links and scrypt passwords kept).
    #[cfg(feature = "postgres")]
    ImportMedusa {
        /// The configuration whose `[store]` receives the identities.
        #[arg(long)]
        config: PathBuf,
        /// The Medusa database: `postgres://…`.
        #[arg(long)]
        from: String,
        /// The schema of Medusa's tables.
        #[arg(long, default_value = "public")]
        schema: String,
        /// Report what would be imported; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Medusa provider values to instance ids: `emailpass=ID,google=ID2`
        /// (default: the same ids).
        #[arg(long)]
        provider_map: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the hash chain and name the first entry that breaks it (exit
    /// status 1 when one does).
    Verify {
        /// The configuration whose `[store]` holds the log.
        #[arg(long)]
        config: PathBuf,
    },
    /// Write the entries, oldest first, as JSON lines on standard output.
    Export {
        /// The configuration whose `[store]` holds the log.
        #[arg(long)]
        config: PathBuf,
        /// Only entries at or after this RFC 3339 time (`2026-01-31T00:00:00Z`).
        #[arg(long)]
        since: Option<String>,
    },
}

/// `audit verify` and `audit export`.
fn audit(command: AuditCommand) -> Result<(), String> {
    let rt = runtime()?;
    match command {
        AuditCommand::Verify { config } => {
            let config = crate::load_config(Some(&config)).map_err(|e| e.to_string())?;
            let report = rt
                .block_on(crate::audit_verify(&config))
                .map_err(|e| e.to_string())?;
            match report.broken {
                None => {
                    println!(
                        "audit verify: ok: {} entries from seq {}; head {}",
                        report.checked, report.start_seq, report.head_hash
                    );
                    Ok(())
                }
                Some(b) => Err(format!(
                    "audit verify: the chain breaks at entry {} (seq {}): {}",
                    b.id, b.seq, b.reason
                )),
            }
        }
        AuditCommand::Export { config, since } => {
            let config = crate::load_config(Some(&config)).map_err(|e| e.to_string())?;
            let since = since
                .map(|s| {
                    time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                        .map_err(|_| {
                            format!(
                                "--since: expected an RFC 3339 time such as \
                                 2026-01-31T00:00:00Z, got {s:?}"
                            )
                        })
                })
                .transpose()?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let count = rt
                .block_on(crate::audit_export(&config, since, &mut out))
                .map_err(|e| e.to_string())?;
            drop(out);
            eprintln!("audit export: {count} entries");
            Ok(())
        }
    }
}

/// `import-medusa`: a progress bar on a terminal, always a summary.
#[cfg(feature = "postgres")]
fn import_medusa(
    config: PathBuf,
    from: String,
    schema: String,
    dry_run: bool,
    provider_map: Option<String>,
) -> Result<(), String> {
    let config = crate::load_config(Some(&config)).map_err(|e| e.to_string())?;
    let mut options = crate::ImportOptions::new(from);
    options.schema = schema;
    options.dry_run = dry_run;
    if let Some(map) = provider_map {
        options.provider_map = crate::ImportOptions::parse_provider_map(&map)?;
    }
    let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} identities ({per_sec}, {eta} left)",
        ) {
            bar.set_style(style);
        }
        bar
    });
    let progress = |done: u64, total: u64| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    };
    let rt = runtime()?;
    let summary = rt
        .block_on(crate::import_medusa(&config, &options, &progress))
        .map_err(|e| e.to_string())?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let what = if dry_run {
        "import-medusa (dry run)"
    } else {
        "import-medusa"
    };
    print!("{what}: {summary}");
    Ok(())
}

/// The runtime commands run on.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// Logs to stderr at `RUST_LOG`'s levels (default `info`), as text or one
/// JSON object per line.
fn init_logging(format: crate::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        crate::LogFormat::Json => builder.json().with_current_span(false).init(),
        _ => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

async fn serve(
    config: crate::AppConfig,
    listen: Option<String>,
    routes: Option<HostRoutes>,
) -> Result<(), String> {
    let listen = listen.unwrap_or_else(|| config.server.listen.clone());
    let mut app = crate::build_app(config).await.map_err(|e| e.to_string())?;
    if let Some(routes) = routes {
        let host = routes(app.service.clone()).await?;
        app.router = host.merge(app.router);
    }
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let providers: Vec<String> = app
        .service
        .module()
        .providers()
        .into_iter()
        .map(|p| p.id)
        .collect();
    match app.metrics_addr {
        Some(metrics) => {
            tracing::info!(%addr, providers = ?providers, %metrics, "auth-server listening");
        }
        None => tracing::info!(%addr, providers = ?providers, "auth-server listening"),
    }
    let events = app.service.events().clone();
    let served = crate::serve(listener, app, shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"));
    // Let event deliveries in flight finish, within reason.
    if tokio::time::timeout(std::time::Duration::from_secs(10), events.flush())
        .await
        .is_err()
    {
        tracing::warn!("gave up waiting for event deliveries");
    }
    served
}

/// Reads the configuration once, starts logging in the format it asks for,
/// then serves. The default mode logs while it loads (a generated secret),
/// so its logging (text: it has no file) starts first.
fn start(
    config: Option<PathBuf>,
    listen: Option<String>,
    routes: Option<HostRoutes>,
) -> Result<(), String> {
    let config = match config {
        Some(path) => {
            let loaded = crate::load_config(Some(&path));
            let format = loaded
                .as_ref()
                .map(|c| c.server.log_format)
                .unwrap_or_default();
            init_logging(format);
            loaded
        }
        None => {
            init_logging(crate::LogFormat::default());
            crate::load_config(None)
        }
    }
    .map_err(|e| e.to_string())?;
    let rt = runtime()?;
    rt.block_on(serve(config, listen, routes))
}

type HostRoutes = Arc<
    dyn Fn(AuthService) -> Pin<Box<dyn Future<Output = Result<Router, String>> + Send>>
        + Send
        + Sync,
>;

/// `auth-server`'s command line, for a binary of your own: the same
/// `serve`, `providers` and `check-config`, configuration, routes and
/// stores, with the provider crates your binary links and, optionally, your
/// own routes beside the auth routes.
///
/// ```no_run
/// // src/main.rs of a binary that adds a provider crate of its own:
/// // use provider_magic_link as _;
/// fn main() -> std::process::ExitCode {
///     auth_server::Server::new("my-auth-server").run()
/// }
/// ```
#[derive(Clone)]
pub struct Server {
    name: &'static str,
    routes: Option<HostRoutes>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("name", &self.name)
            .field("routes", &self.routes.is_some())
            .finish()
    }
}

impl Server {
    /// A command line named `name` (in `--help` and `--version`).
    pub fn new(name: &'static str) -> Self {
        Server { name, routes: None }
    }

    /// Adds the routes `routes` builds from the auth service (once, at
    /// `serve`, after the stores are open) beside the auth routes. A router
    /// without a fallback of its own: the auth router answers unknown paths.
    pub fn with_routes<F, Fut>(mut self, routes: F) -> Self
    where
        F: Fn(AuthService) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Router, String>> + Send + 'static,
    {
        self.routes = Some(Arc::new(move |service| Box::pin(routes(service))));
        self
    }

    /// Parses the process's arguments and runs the command.
    pub fn run(self) -> ExitCode {
        self.run_from(std::env::args_os())
    }

    /// Parses `args` (the first is the program name) and runs the command.
    pub fn run_from<I, T>(self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let command = Cli::command().name(self.name);
        let cli = match command
            .try_get_matches_from(args)
            .and_then(|m| Cli::from_arg_matches(&m))
        {
            Ok(cli) => cli,
            Err(e) => e.exit(),
        };
        let result = match cli.command {
            Command::Providers => {
                init_logging(crate::LogFormat::default());
                for (id, name) in crate::linked_providers() {
                    println!("{id}\t{name}");
                }
                Ok(())
            }
            Command::CheckConfig { file } => {
                init_logging(crate::LogFormat::default());
                crate::check_config(&file)
                    .map(|msg| println!("{msg}"))
                    .map_err(|e| e.to_string())
            }
            Command::Serve { config, listen } => start(config, listen, self.routes),
            Command::Openapi => serde_json::to_string_pretty(&auth_http::openapi_document())
                .map(|doc| println!("{doc}"))
                .map_err(|e| e.to_string()),
            Command::Audit { command } => {
                init_logging(crate::LogFormat::default());
                audit(command)
            }
            #[cfg(feature = "postgres")]
            Command::ImportMedusa {
                config,
                from,
                schema,
                dry_run,
                provider_map,
            } => {
                init_logging(crate::LogFormat::default());
                import_medusa(config, from, schema, dry_run, provider_map)
            }
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("error: {msg}");
                ExitCode::FAILURE
            }
        }
    }
}

/// `auth-server`'s `main`: `Server::new("auth-server").run()`.
pub fn main() -> ExitCode {
    Server::new("auth-server").run()
}
