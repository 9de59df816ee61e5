//! A real SMTP server for the tests: aiosmtpd (tests/smtp/sink.py, installed by scripts/test into
//! .tools/aiosmtpd) on a free loopback port, saving each mail it accepts as JSON in a folder of
//! its own. Killed (by pid) when dropped, also when a test panics.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{first_line, free_port};

/// One mail as the server received it, decoded.
#[derive(Debug, Clone, Deserialize)]
pub struct ReceivedMail {
    pub rcpt_to: Vec<String>,
    pub from: String,
    pub to: String,
    pub subject: String,
    pub message_id: String,
    pub text: String,
    pub html: String,
}

impl ReceivedMail {
    /// The first link in the plain-text part that starts with `prefix`.
    pub fn link(&self, prefix: &str) -> String {
        let start = self
            .text
            .find(prefix)
            .unwrap_or_else(|| panic!("no link starting {prefix} in: {}", self.text));
        self.text[start..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    }
}

pub struct MailSink {
    pub port: u16,
    folder: tempdir::Folder,
    child: Option<Child>,
}

mod tempdir {
    /// A folder removed when dropped.
    pub struct Folder(pub std::path::PathBuf);

    impl Drop for Folder {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn tools_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/aiosmtpd")
}

impl MailSink {
    /// Starts a server on a free port.
    pub fn start() -> Self {
        let folder = std::env::temp_dir().join(format!("gatehouse-mail-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&folder).unwrap();
        let mut sink = Self {
            port: free_port(),
            folder: tempdir::Folder(folder),
            child: None,
        };
        sink.resume();
        sink
    }

    /// `GATEHOUSE_SMTP_URL` for this server.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Stops accepting mail (the port refuses connections) until `resume`.
    pub fn pause(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port and folder.
    pub fn resume(&mut self) {
        assert!(
            tools_dir().join("aiosmtpd").is_dir(),
            ".tools/aiosmtpd is missing: scripts/test installs it (pip, tests/smtp/requirements.txt)"
        );
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = Command::new(&python)
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/sink.py"))
            .arg(self.port.to_string())
            .arg(&self.folder.0)
            .env("PYTHONPATH", tools_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {python}: {err}"));
        let line = first_line(&mut child, "the SMTP server");
        self.child = Some(child);
        assert_eq!(line.trim(), "ready");
    }

    /// Every mail received so far, oldest first.
    pub fn received(&self) -> Vec<ReceivedMail> {
        let mut files: Vec<_> = std::fs::read_dir(&self.folder.0)
            .unwrap()
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        files.sort_by_key(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok());
        files
            .iter()
            .map(|path| serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap())
            .collect()
    }

    /// The mails to `to`, waiting up to 15 s until there are at least `count`.
    pub async fn wait_for(&self, to: &str, count: usize) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let mails: Vec<_> = self
                .received()
                .into_iter()
                .filter(|mail| mail.rcpt_to.iter().any(|rcpt| rcpt == to))
                .collect();
            if mails.len() >= count || Instant::now() > deadline {
                assert!(
                    mails.len() >= count,
                    "{} of {count} mails to {to} arrived",
                    mails.len()
                );
                return mails;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The one mail to `to` whose subject contains `subject`, waiting for it.
    pub async fn mail(&self, to: &str, subject: &str) -> ReceivedMail {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let found: Vec<_> = self
                .received()
                .into_iter()
                .filter(|mail| {
                    mail.rcpt_to.iter().any(|rcpt| rcpt == to) && mail.subject.contains(subject)
                })
                .collect();
            if let [mail] = found.as_slice() {
                return mail.clone();
            }
            assert!(
                found.len() < 2,
                "{} mails to {to} about {subject:?}",
                found.len()
            );
            assert!(
                Instant::now() < deadline,
                "no mail to {to} about {subject:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for MailSink {
    fn drop(&mut self) {
        self.pause();
    }
}
