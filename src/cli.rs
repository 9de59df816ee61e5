//! The binary's command line: `serve` (the default), `migrate`, `check-config`, `secret-key
//! rotate` and `healthcheck`, each with `--help`. A small hand parser: five commands without
//! options do not need an argument-parsing crate and its build time.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use secrecy::SecretString;
use tracing_subscriber::EnvFilter;

use crate::app::AppState;
use crate::config::{Config, LogFormat};
use crate::domain::audit::{Actor, Who};
use crate::domain::sealing::SecretKey;
use crate::{db, server};

/// What the command line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Serve,
    Migrate,
    CheckConfig,
    RotateSecretKey,
    Healthcheck,
    Version,
    /// Print this help text and exit successfully.
    Help(&'static str),
}

pub const HELP: &str = "\
Gatehouse: API keys, tenants and their portal.

Usage: gatehouse [COMMAND]

Commands:
  serve              Serve the portal and the APIs (the default); applies migrations first
  migrate            Apply the database migrations and exit (for a release job)
  check-config       Read every variable, name each bad one, exit non-zero if any
  secret-key rotate  Re-seal every sealed secret under a new GATEHOUSE_SECRET_KEY
  healthcheck        Exit 0 when this host's Gatehouse answers /readyz (for containers)

Every command reads its settings from the environment (docs/configuration.md).
Run `gatehouse COMMAND --help` for one command's help; `gatehouse --version` for the version.
";

pub const SERVE_HELP: &str = "\
Usage: gatehouse serve

Applies the migrations, then serves the portal, the key API and the management API on
GATEHOUSE_LISTEN (and /metrics on GATEHOUSE_METRICS_LISTEN when set) until SIGTERM or Ctrl-C,
which shut down gracefully. A bad variable stops the start with exit status 2.
";

pub const MIGRATE_HELP: &str = "\
Usage: gatehouse migrate

Applies the migrations this binary carries to DATABASE_URL and exits: 0 when the database is
up to date, 1 on failure. Migrations are forward-only and safe beside the previous release
(docs/operations.md, Upgrades). Reads only DATABASE_URL.
";

pub const CHECK_CONFIG_HELP: &str = "\
Usage: gatehouse check-config

Reads every variable `serve` reads (and the profiles file it names) without connecting to
anything, prints one line per bad variable naming it, and exits 2 if there is any; 0 and a
summary otherwise.
";

pub const SECRET_KEY_HELP: &str = "\
Usage: gatehouse secret-key rotate

Re-seals every sealed secret (webhook signing secrets, receivers' credentials, kept management
API answers) under a new key, in one transaction, audited as the operator in each tenant.

  GATEHOUSE_PREVIOUS_SECRET_KEY  the key the database is sealed with now
  GATEHOUSE_SECRET_KEY           the new key (openssl rand -base64 32)
  DATABASE_URL                   the database

A value that opens with neither key changes nothing and exits 1. Running it again is harmless.
Then restart every instance with the new GATEHOUSE_SECRET_KEY (docs/operations.md).
";

pub const HEALTHCHECK_HELP: &str = "\
Usage: gatehouse healthcheck

Asks GET /readyz of the Gatehouse listening on GATEHOUSE_LISTEN (on this host) and exits 0 when
it answers 200 within 3 seconds, 1 otherwise. The container image's HEALTHCHECK runs it.
";

/// Reads the arguments after the program's name.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let help = |text| Ok(Command::Help(text));
    match args.as_slice() {
        [] | ["serve"] => Ok(Command::Serve),
        ["-h" | "--help" | "help"] => help(HELP),
        ["-V" | "--version"] => Ok(Command::Version),
        ["serve", "-h" | "--help"] | ["help", "serve"] => help(SERVE_HELP),
        ["migrate"] => Ok(Command::Migrate),
        ["migrate", "-h" | "--help"] | ["help", "migrate"] => help(MIGRATE_HELP),
        ["check-config"] => Ok(Command::CheckConfig),
        ["check-config", "-h" | "--help"] | ["help", "check-config"] => help(CHECK_CONFIG_HELP),
        ["secret-key", "rotate"] => Ok(Command::RotateSecretKey),
        ["secret-key", "-h" | "--help"]
        | ["secret-key", "rotate", "-h" | "--help"]
        | ["help", "secret-key", ..] => help(SECRET_KEY_HELP),
        ["secret-key", ..] => Err("`secret-key` takes one command: rotate".into()),
        ["healthcheck"] => Ok(Command::Healthcheck),
        ["healthcheck", "-h" | "--help"] | ["help", "healthcheck"] => help(HEALTHCHECK_HELP),
        [command, ..] if command.starts_with('-') => Err(format!("unknown option {command:?}")),
        [command] => Err(format!("unknown command {command:?}")),
        [command, rest @ ..] => Err(format!(
            "{command:?} takes no arguments (got {:?})",
            rest.join(" ")
        )),
    }
}

/// Runs the command the arguments name.
pub async fn run(args: &[String]) -> ExitCode {
    let command = match parse(args) {
        Ok(command) => command,
        Err(problem) => {
            eprintln!("gatehouse: {problem}\nRun `gatehouse --help` for the commands.");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("gatehouse {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::CheckConfig => check_config(),
        Command::Healthcheck => healthcheck().await,
        Command::Serve | Command::Migrate | Command::RotateSecretKey => {
            if let Err(code) = start_logging() {
                return code;
            }
            match command {
                Command::Migrate => migrate().await,
                Command::RotateSecretKey => rotate_secret_key().await,
                _ => serve().await,
            }
        }
    }
}

fn start_logging() -> Result<(), ExitCode> {
    let format = LogFormat::from_env().map_err(|err| {
        eprintln!("gatehouse: configuration error: {err}");
        ExitCode::from(2)
    })?;
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
    Ok(())
}

/// Every bad variable, one line each, on standard error.
fn config_problems(err: &crate::config::ConfigErrors) -> ExitCode {
    for problem in &err.0 {
        eprintln!("gatehouse: configuration error: {problem}");
    }
    ExitCode::from(2)
}

async fn serve() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => return config_problems(&err),
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

fn check_config() -> ExitCode {
    let mut problems = Vec::new();
    if let Err(err) = LogFormat::from_env() {
        problems.push(err);
    }
    let config = match Config::from_env() {
        Ok(config) => Some(config),
        Err(err) => {
            problems.extend(err.0);
            None
        }
    };
    match config {
        Some(config) if problems.is_empty() => {
            println!(
                "gatehouse: the configuration is valid: listening on {}, public URL {}, {} verifier \
                 token(s), {} operator token(s), {} SSO provider(s), mail {}, webhooks {}",
                config.listen,
                config.public_url.origin(),
                config.verifier_tokens.len(),
                config.operator_tokens.len(),
                config.oidc_providers.len(),
                if config.smtp_url.is_some() {
                    "by SMTP"
                } else {
                    "to the log"
                },
                if config.secret_key.is_some() {
                    "sealed"
                } else {
                    "off (no GATEHOUSE_SECRET_KEY)"
                },
            );
            ExitCode::SUCCESS
        }
        _ => config_problems(&crate::config::ConfigErrors(problems)),
    }
}

/// `DATABASE_URL`, required.
fn database_url() -> Result<SecretString, ExitCode> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Ok(SecretString::from(url)),
        _ => {
            eprintln!(
                "gatehouse: configuration error: DATABASE_URL: is required (postgres://user@host:port/db)"
            );
            Err(ExitCode::from(2))
        }
    }
}

async fn migrate() -> ExitCode {
    let url = match database_url() {
        Ok(url) => url,
        Err(code) => return code,
    };
    let pool = match db::connect(&url, 2).await {
        Ok(pool) => pool,
        Err(err) => {
            tracing::error!(error = %err, "cannot connect to DATABASE_URL");
            return ExitCode::FAILURE;
        }
    };
    if let Err(err) = AppState::migrate(&pool).await {
        tracing::error!(error = %err, "migrations failed");
        return ExitCode::FAILURE;
    }
    let latest = db::MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    tracing::info!(version = latest, "the database is up to date");
    ExitCode::SUCCESS
}

/// A secret key from `variable`, required.
fn secret_key(variable: &str) -> Result<SecretKey, ExitCode> {
    let value = std::env::var(variable).unwrap_or_default();
    if value.trim().is_empty() {
        eprintln!(
            "gatehouse: configuration error: {variable}: is required to rotate the secret key"
        );
        return Err(ExitCode::from(2));
    }
    SecretKey::parse(&value).map_err(|reason| {
        eprintln!("gatehouse: configuration error: {variable}: {reason}");
        ExitCode::from(2)
    })
}

async fn rotate_secret_key() -> ExitCode {
    let keys = (
        database_url(),
        secret_key("GATEHOUSE_PREVIOUS_SECRET_KEY"),
        secret_key("GATEHOUSE_SECRET_KEY"),
    );
    let (Ok(url), Ok(previous), Ok(new)) = keys else {
        return ExitCode::from(2);
    };
    let pool = match db::connect(&url, 2).await {
        Ok(pool) => pool,
        Err(err) => {
            tracing::error!(error = %err, "cannot connect to DATABASE_URL");
            return ExitCode::FAILURE;
        }
    };
    let operator = Actor {
        who: Who::Operator,
        request_id: format!("cli-{}", uuid::Uuid::new_v4()),
        client_ip: std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        user_agent: Some("gatehouse secret-key rotate".into()),
    };
    match crate::domain::secret_key::rotate(&pool, &previous, &new, &operator).await {
        Ok(Ok(rotated)) => {
            println!(
                "gatehouse: re-sealed {} webhook endpoint(s), {} kept answer(s) and {} token \
                 signing key(s) under the new key ({} value(s) were under it already); restart \
                 every instance with the new GATEHOUSE_SECRET_KEY",
                rotated.endpoints, rotated.answers, rotated.signing_keys, rotated.already_new
            );
            ExitCode::SUCCESS
        }
        Ok(Err(refusal)) => {
            eprintln!("gatehouse: {refusal}");
            ExitCode::FAILURE
        }
        Err(err) => {
            tracing::error!(error = %err, "the rotation failed; nothing was changed");
            ExitCode::FAILURE
        }
    }
}

async fn healthcheck() -> ExitCode {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listen = std::env::var("GATEHOUSE_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let Ok(mut address) = listen.trim().parse::<std::net::SocketAddr>() else {
        eprintln!("gatehouse: GATEHOUSE_LISTEN: {listen:?} is not an address");
        return ExitCode::FAILURE;
    };
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        stream
            .write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    match tokio::time::timeout(Duration::from_secs(3), ask).await {
        Ok(Ok(answer)) if answer.starts_with(b"HTTP/1.1 200") => ExitCode::SUCCESS,
        Ok(Ok(answer)) => {
            let line = String::from_utf8_lossy(&answer);
            eprintln!(
                "gatehouse: /readyz answered {:?}",
                line.lines().next().unwrap_or("")
            );
            ExitCode::FAILURE
        }
        Ok(Err(err)) => {
            eprintln!("gatehouse: cannot reach {address}: {err}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("gatehouse: {address} did not answer /readyz within 3 seconds");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Result<Command, String> {
        parse(&args.iter().map(|arg| (*arg).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn serve_is_the_default_and_every_command_has_its_help() {
        assert_eq!(parsed(&[]), Ok(Command::Serve));
        assert_eq!(
            parsed(&["secret-key", "rotate"]),
            Ok(Command::RotateSecretKey)
        );
        assert_eq!(parsed(&["check-config"]), Ok(Command::CheckConfig));
        for command in [
            "serve",
            "migrate",
            "check-config",
            "secret-key",
            "healthcheck",
        ] {
            let Ok(Command::Help(text)) = parsed(&[command, "--help"]) else {
                panic!("{command} --help");
            };
            assert!(
                text.starts_with(&format!("Usage: gatehouse {command}")),
                "{text}"
            );
            assert!(
                HELP.contains(&format!("\n  {command}")),
                "{command} in the main help"
            );
        }
        assert!(parsed(&["sevre"]).unwrap_err().contains("unknown command"));
        assert!(parsed(&["secret-key"]).is_err());
        assert!(parsed(&["migrate", "now"]).is_err());
    }
}
