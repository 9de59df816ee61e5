//! Reads the configuration, starts logging and serves until SIGTERM or Ctrl-C.

use std::io::IsTerminal;
use std::process::ExitCode;

use gatehouse::app::AppState;
use gatehouse::config::{Config, LogFormat};
use gatehouse::server;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let format = match LogFormat::from_env() {
        Ok(format) => format,
        Err(err) => {
            eprintln!("gatehouse: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        // Colour codes only where a person reads a terminal, never in files or pipes.
        .with_ansi(std::io::stdout().is_terminal());
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }

    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("gatehouse: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    let listen = config.listen;
    let public_url = config.public_url.clone();

    let state = match AppState::connect(config).await {
        Ok(state) => state,
        Err(err) => {
            tracing::error!(error = %err, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(error = %err, %listen, "cannot listen (GATEHOUSE_LISTEN)");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(%listen, public_url = ?public_url, "Gatehouse is serving");
    match server::serve(listener, state, server::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "server failed");
            ExitCode::FAILURE
        }
    }
}
