//! Real headless Chromium through chromedriver, one fresh profile per browser.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::process::{Child, Command};

use super::free_port;

pub struct Chrome {
    pub client: Client,
    _driver: Child,
    profile: PathBuf,
}

pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    );
    target.join("screenshots")
}

/// axe-core's script, installed by `scripts/test` (`npm ci` in `tests/axe`).
fn axe_source() -> &'static str {
    static SOURCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SOURCE.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/axe/node_modules/axe-core/axe.min.js");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("{} (scripts/test installs it): {err}", path.display()))
    })
}

impl Chrome {
    pub async fn start() -> Self {
        let port = free_port();
        let driver_path = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot start {driver_path} (scripts/test installs it): {err}")
            });
        let profile =
            std::env::temp_dir().join(format!("gatehouse-chrome-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&profile).unwrap();
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": binary,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }),
        );
        // The browser's console (errors, failed loads) kept for `console_problems`.
        caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let url = format!("http://127.0.0.1:{port}");
        let mut last_error = None;
        for _ in 0..100 {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Self {
                        client,
                        _driver: driver,
                        profile,
                    };
                }
                Err(err) => {
                    last_error = Some(err);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        panic!("chromedriver did not start: {last_error:?}");
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|err| panic!("{css}: {err}"))
            .click()
            .await
            .unwrap();
    }

    /// Waits (up to 10 s) until the element's text contains `needle`: a click on a submit button
    /// returns before the next page has loaded.
    pub async fn expect_text(&self, css: &str, needle: &str) {
        let mut seen = String::new();
        for _ in 0..100 {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
            {
                if text.contains(needle) {
                    return;
                }
                seen = text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.screenshot("failed-expect-text").await;
        panic!(
            "{css}: expected {needle:?}, saw {seen:?} (target/screenshots/failed-expect-text.png)"
        );
    }

    /// The current value of a form field.
    pub async fn value(&self, css: &str) -> String {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.prop("value").await.unwrap().unwrap_or_default()
    }

    pub async fn select(&self, css: &str, value: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.select_by_value(value).await.unwrap();
    }

    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Makes the window `width` pixels wide (390: a phone).
    pub async fn resize(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
    }

    /// Saves the page as `target/screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Saves the whole page, however long, at `width` px as `target/screenshots/<name>.png`
    /// (the window grows to the page's height, then goes back to `width` x `height`).
    pub async fn screenshot_whole(&self, name: &str, width: u32, height: u32) {
        let page_height = self
            .client
            .execute("return document.documentElement.scrollHeight;", vec![])
            .await
            .unwrap()
            .as_u64()
            .unwrap();
        let page_height = u32::try_from(page_height).unwrap_or(height).max(height);
        self.resize(width, page_height).await;
        self.screenshot(name).await;
        self.resize(width, height).await;
    }

    /// Checks the page as it is now at desktop, tablet and phone widths and returns what is
    /// wrong: a console error or failed load since the last check, sideways scrolling, or a serious
    /// or critical axe-core violation (at 1280 and 390 px). A screenshot of each width lands in
    /// `target/screenshots/<name>-<width>.png`.
    pub async fn check_page(&self, name: &str) -> Vec<String> {
        let mut problems: Vec<String> = self
            .console_problems()
            .await
            .into_iter()
            .map(|problem| format!("{name}: console: {problem}"))
            .collect();
        for width in [1280, 768, 390] {
            let height = if width == 390 { 844 } else { 900 };
            self.client.set_window_size(width, height).await.unwrap();
            let (scroll_width, inner_width) = self.widths().await;
            assert_eq!(
                inner_width,
                u64::from(width),
                "the window is {width} px wide"
            );
            if scroll_width > inner_width {
                problems.push(format!(
                    "{name} at {width} px scrolls sideways: {scroll_width} px wide"
                ));
            }
            self.screenshot(&format!("{name}-{width}")).await;
            if width != 768 {
                for violation in self.axe_violations().await {
                    problems.push(format!("{name} at {width} px: {violation}"));
                }
            }
        }
        self.client.set_window_size(1280, 900).await.unwrap();
        problems
    }

    /// The console's errors since last asked (chromedriver hands each entry out once): script
    /// errors, `console.error`, CSP refusals and resources that failed to load. The document's own
    /// status is left out: a refused form answers 422 and a missing page 404 on purpose, and
    /// the HTTP tests assert those.
    pub async fn console_problems(&self) -> Vec<String> {
        let document = self.client.current_url().await.unwrap().to_string();
        let entries = self.client.issue_cmd(BrowserLog).await.unwrap();
        entries
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["level"] == "SEVERE")
            .filter_map(|entry| entry["message"].as_str())
            .filter(|message| {
                !message.starts_with(&format!("{document} - Failed to load resource"))
            })
            .map(str::to_owned)
            .collect()
    }

    /// The elements matching `css` and, for each that a person cannot see whole in the window
    /// as it is (not drawn, outside the viewport, cut off by a parent or covered), why. Panics when
    /// nothing matches.
    pub async fn out_of_sight(&self, css: &str) -> Vec<String> {
        let found = self
            .client
            .execute(
                r#"const out = [];
                const all = document.querySelectorAll(arguments[0]);
                for (const el of all) {
                  const r = el.getBoundingClientRect();
                  const label = el.textContent.trim();
                  if (r.width === 0 || r.height === 0 || getComputedStyle(el).visibility === "hidden") {
                    out.push(`${label}: not drawn`);
                  } else if (r.left < 0 || r.right > window.innerWidth + 0.5 || r.top < 0 || r.bottom > window.innerHeight) {
                    out.push(`${label}: at x ${Math.round(r.left)}..${Math.round(r.right)} of ${window.innerWidth} px`);
                  } else {
                    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
                    if (!hit || !(hit === el || el.contains(hit))) out.push(`${label}: hidden under another element`);
                  }
                }
                return [all.length, out];"#,
                vec![json!(css)],
            )
            .await
            .unwrap();
        assert!(found[0].as_u64().unwrap() > 0, "nothing matches {css}");
        serde_json::from_value(found[1].clone()).unwrap()
    }

    /// The elements matching `css` whose content is wider than they are (cut off, or scrolling
    /// sideways inside them), one line each.
    pub async fn clipped(&self, css: &str) -> Vec<String> {
        let found = self
            .client
            .execute(
                r#"const out = [];
                for (const el of document.querySelectorAll(arguments[0])) {
                  if (el.scrollWidth > el.clientWidth + 1) {
                    const name = el.querySelector("h2")?.textContent.trim() ?? el.className;
                    out.push(`${name}: ${el.scrollWidth} px of content in ${el.clientWidth} px`);
                  }
                }
                return out;"#,
                vec![json!(css)],
            )
            .await
            .unwrap();
        serde_json::from_value(found).unwrap()
    }

    async fn widths(&self) -> (u64, u64) {
        let widths = self
            .client
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                vec![],
            )
            .await
            .unwrap();
        (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap())
    }

    /// axe-core's serious and critical violations on the page, one line each. WebDriver runs the
    /// script outside the page's CSP, which stays as strict as the product sends it.
    async fn axe_violations(&self) -> Vec<String> {
        let loaded = self
            .client
            .execute("return typeof window.axe === 'object';", vec![])
            .await
            .unwrap();
        if loaded != json!(true) {
            self.client.execute(axe_source(), vec![]).await.unwrap();
        }
        let found = self
            .client
            .execute_async(
                r#"const done = arguments[0];
                axe.run(document, { resultTypes: ["violations"] }).then((results) => done(
                  results.violations
                    .filter((v) => v.impact === "serious" || v.impact === "critical")
                    .flatMap((v) => v.nodes.map((n) =>
                      `${v.id} (${v.impact}): ${n.target.join(" ")}: ${n.failureSummary}`))
                ), (error) => done([`axe failed: ${error}`]));"#,
                vec![],
            )
            .await
            .unwrap();
        serde_json::from_value(found).unwrap()
    }

    pub async fn close(self) {
        let Self {
            client, profile, ..
        } = self;
        let _ = client.close().await;
        let _ = std::fs::remove_dir_all(profile);
    }
}

/// chromedriver's `POST /session/{id}/se/log` for the `browser` log (with `goog:loggingPrefs`).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &reqwest::Url,
        session_id: Option<&str>,
    ) -> Result<reqwest::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &reqwest::Url) -> (reqwest::Method, Option<String>) {
        (
            reqwest::Method::POST,
            Some(r#"{"type":"browser"}"#.to_owned()),
        )
    }
}
