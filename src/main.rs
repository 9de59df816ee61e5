//! The `gatehouse` binary: `serve` (the default) and the operator's commands (`src/cli.rs`).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    gatehouse::cli::run(&args).await
}
