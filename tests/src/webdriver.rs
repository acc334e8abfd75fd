//! A minimal W3C WebDriver client over HTTP for driving Debian's headless Chromium through
//! chromedriver in the browser tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where Debian installs the browser and its driver.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// chromedriver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Whether the browser and driver are installed.
pub fn available() -> bool {
    Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists()
}

/// A chromedriver process with one browser session.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    client: reqwest::blocking::Client,
    /// Download directory.
    pub downloads: PathBuf,
    _profile: crate::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session downloading into `downloads`.
    pub fn start(downloads: &Path) -> Browser {
        let port = crate::free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while client.get(format!("{base}/status")).send().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = crate::TempDir::new("chromium-profile");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                         "--no-first-run", "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--window-size=1280,900", "--lang=ja-JP",
                         format!("--user-data-dir={}", profile.0.display())],
                "prefs": {"download.default_directory": downloads.to_str().unwrap(),
                          "download.prompt_for_download": false,
                          "safebrowsing.enabled": false}
            }
        }}});
        let v: Value = client
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_owned();
        let b = Browser {
            driver,
            base,
            session,
            client,
            downloads: downloads.to_owned(),
            _profile: profile,
        };
        // headless downloads need explicit permission
        b.cdp(
            "Browser.setDownloadBehavior",
            json!({"behavior": "allow", "downloadPath": downloads.to_str().unwrap()}),
        );
        b
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.base, self.session)
    }

    fn post(&self, path: &str, body: Value) -> Value {
        let v: Value = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .unwrap()
            .json()
            .unwrap();
        if v["value"].get("error").is_some() {
            panic!("webdriver {path}: {v}");
        }
        v["value"].clone()
    }

    fn cdp(&self, cmd: &str, params: Value) {
        let _ = self
            .client
            .post(self.url("/goog/cdp/execute"))
            .json(&json!({"cmd": cmd, "params": params}))
            .send();
    }

    /// Runs a Chrome DevTools command and gives its result.
    pub fn cdp_call(&self, cmd: &str, params: Value) -> Value {
        self.post("/goog/cdp/execute", json!({"cmd": cmd, "params": params}))
    }

    /// The page as the browser prints it (its print stylesheet and `@page` size): PDF bytes.
    pub fn print_pdf(&self) -> Vec<u8> {
        let v = self.cdp_call(
            "Page.printToPDF",
            json!({"preferCSSPageSize": true, "printBackground": false}),
        );
        data_encoding::BASE64
            .decode(
                v["data"]
                    .as_str()
                    .expect("printToPDF gives data")
                    .as_bytes(),
            )
            .unwrap()
    }

    /// Resizes the window (a tablet's width, say).
    pub fn window_size(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({ "width": width, "height": height }));
    }

    /// Opens a URL.
    pub fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url }));
    }

    /// Finds an element by CSS selector, waiting up to 15 s for it.
    pub fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let v: Value = self
                .client
                .post(self.url("/element"))
                .json(&json!({"using": "css selector", "value": css}))
                .send()
                .unwrap()
                .json()
                .unwrap();
            if let Some(id) = v["value"][ELEMENT].as_str() {
                return id.to_owned();
            }
            assert!(Instant::now() < deadline, "element {css} not found: {v}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Types into an element (for a file input: absolute paths separated by newlines).
    pub fn type_into(&self, css: &str, text: &str) {
        self.element_action(css, "value", json!({ "text": text }));
    }

    /// Clicks an element, waiting up to 15 s for it to become clickable.
    pub fn click(&self, css: &str) {
        self.element_action(css, "click", json!({}));
    }

    /// Performs an element action, waiting up to 15 s for the element to accept it (a page
    /// still rendering on a loaded machine answers "element not interactable").
    fn element_action(&self, css: &str, action: &str, body: Value) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let id = self.find(css);
            let v: Value = self
                .client
                .post(self.url(&format!("/element/{id}/{action}")))
                .json(&body)
                .send()
                .unwrap()
                .json()
                .unwrap();
            let err = v["value"]["error"].as_str().unwrap_or_default();
            if err.is_empty() {
                return;
            }
            let transient = err == "element not interactable"
                || err == "stale element reference"
                || err == "element click intercepted";
            assert!(
                transient && Instant::now() < deadline,
                "webdriver {action} {css}: {v}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Visible text of an element.
    pub fn text(&self, css: &str) -> String {
        let id = self.find(css);
        let v: Value = self
            .client
            .get(self.url(&format!("/element/{id}/text")))
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["value"].as_str().unwrap_or_default().to_owned()
    }

    /// Waits until the element's text contains `needle`.
    pub fn wait_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let t = self.text(css);
            if t.contains(needle) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never showed {needle:?}; last: {t}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs a script in the page.
    pub fn script(&self, js: &str) -> Value {
        self.post("/execute/sync", json!({ "script": js, "args": [] }))
    }

    /// Saves a PNG screenshot.
    pub fn screenshot(&self, path: &Path) {
        let v: Value = self
            .client
            .get(self.url("/screenshot"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let png = data_encoding::BASE64
            .decode(v["value"].as_str().unwrap().as_bytes())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.client.delete(self.url("")).send();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
