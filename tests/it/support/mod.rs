//! What the tests share: the running app and its browser-like client, the real binary, real Chromium, throwaway
//! PostgreSQL clusters, identity providers, and fixtures.

pub mod app;
pub mod binary;
pub mod browser;
pub mod clusters;
pub mod fixtures;
pub mod gateways;
pub mod identity_providers;
pub mod key_api;
pub mod leaks;
pub mod management;
pub mod smtp;
pub mod webhooks;
pub mod yaml;

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The first line a just-started server prints on stdout (how the test servers say they are
/// ready), waiting up to 20 s. Keeps reading to the end, since a closed pipe would kill the server
/// at its next write.
pub fn first_line(child: &mut std::process::Child, what: &str) -> String {
    use std::io::{BufRead, BufReader};
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    rx.recv_timeout(std::time::Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{what} did not start within 20 s"))
}
