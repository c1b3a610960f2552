//! The `auth-server` binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Medusa-compatible authentication server.
#[derive(Debug, Parser)]
#[command(name = "auth-server", version, about)]
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
}

/// Logs to stderr at `RUST_LOG`'s levels (default `info`), as text or one
/// JSON object per line.
fn init_logging(format: auth_server::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        auth_server::LogFormat::Json => builder.json().with_current_span(false).init(),
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

async fn serve(config: auth_server::AppConfig, listen: Option<String>) -> Result<(), String> {
    let listen = listen.unwrap_or_else(|| config.server.listen.clone());
    let app = auth_server::build_app(config)
        .await
        .map_err(|e| e.to_string())?;
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
    let served = auth_server::serve(listener, app, shutdown_signal())
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
fn start(config: Option<PathBuf>, listen: Option<String>) -> Result<(), String> {
    let config = match config {
        Some(path) => {
            let loaded = auth_server::load_config(Some(&path));
            let format = loaded
                .as_ref()
                .map(|c| c.server.log_format)
                .unwrap_or_default();
            init_logging(format);
            loaded
        }
        None => {
            init_logging(auth_server::LogFormat::default());
            auth_server::load_config(None)
        }
    }
    .map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(serve(config, listen))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Providers => {
            init_logging(auth_server::LogFormat::default());
            for (id, name) in auth_server::linked_providers() {
                println!("{id}\t{name}");
            }
            Ok(())
        }
        Command::CheckConfig { file } => {
            init_logging(auth_server::LogFormat::default());
            auth_server::check_config(&file)
                .map(|msg| println!("{msg}"))
                .map_err(|e| e.to_string())
        }
        Command::Serve { config, listen } => start(config, listen),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}
