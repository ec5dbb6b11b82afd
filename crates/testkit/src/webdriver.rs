//! A small W3C WebDriver client for Debian's `chromedriver` and headless `chromium`: enough to
//! open pages, fill forms, click and read text, and take screenshots.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

fn find_bin(names: &[&str]) -> Option<String> {
    names.iter().find(|n| std::path::Path::new(n).exists()).map(|s| (*s).to_owned())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium. None (skip) if they are not installed,
    /// except under CI=true, where it panics. Installed but failing to start a session is a
    /// failure, never a skip (the driver is stopped first).
    pub async fn start() -> Option<Self> {
        let driver_bin = find_bin(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]);
        let chrome_bin = find_bin(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
        let (Some(driver_bin), Some(chrome_bin)) = (driver_bin, chrome_bin) else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but chromium / chromedriver are not installed");
            }
            eprintln!("SKIP: chromium or chromedriver not installed");
            return None;
        };
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
            l.local_addr().ok()?.port()
        };
        let profile = tempfile::tempdir().expect("a profile directory for Chromium");
        let mut driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http.get(format!("{base}/status")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chrome_bin,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                         "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
                         "--window-size=1280,900", format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let r: Option<Value> = match http.post(format!("{base}/session")).json(&caps).send().await {
            Ok(resp) => resp.json().await.ok(),
            Err(_) => None,
        };
        let Some(session) = r.as_ref().and_then(|r| r["value"]["sessionId"].as_str()).map(str::to_owned) else {
            let _ = (driver.kill(), driver.wait());
            panic!("chromedriver started no Chromium session: {r:?}");
        };
        Some(Self { driver, base, session, http, _profile: profile })
    }

    fn u(&self, p: &str) -> String {
        format!("{}/session/{}{}", self.base, self.session, p)
    }

    async fn post(&self, p: &str, body: Value) -> Value {
        let r: Value = self.http.post(self.u(p)).json(&body).send().await.unwrap().json().await.unwrap();
        if r["value"].get("error").is_some() {
            panic!("webdriver {p}: {}", r["value"]);
        }
        r["value"].clone()
    }

    async fn get(&self, p: &str) -> Value {
        let r: Value = self.http.get(self.u(p)).send().await.unwrap().json().await.unwrap();
        r["value"].clone()
    }

    /// Adds a virtual CTAP2 authenticator with user verification (a passkey device).
    pub async fn add_virtual_authenticator(&self) -> String {
        let v = self
            .post(
                "/webauthn/authenticator",
                json!({"protocol": "ctap2", "transport": "internal", "hasResidentKey": true,
                       "hasUserVerification": true, "isUserConsenting": true, "isUserVerified": true}),
            )
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({"url": url})).await;
    }

    pub async fn url(&self) -> String {
        self.get("/url").await.as_str().unwrap_or_default().to_owned()
    }

    pub async fn source(&self) -> String {
        self.get("/source").await.as_str().unwrap_or_default().to_owned()
    }

    /// The ids of the elements matching a CSS selector now.
    async fn elements(&self, css: &str) -> Vec<String> {
        let r: Value = self
            .http
            .post(self.u("/elements"))
            .json(&json!({"using": "css selector", "value": css}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["value"].as_array().map(|a| a.iter().filter_map(|e| e[ELEMENT].as_str().map(str::to_owned)).collect()).unwrap_or_default()
    }

    /// Finds an element by CSS selector, waiting up to 5 s for it to appear.
    pub async fn find(&self, css: &str) -> String {
        for _ in 0..50 {
            if let Some(id) = self.elements(css).await.into_iter().next() {
                return id;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("element {css} not found in {}", self.source().await.chars().take(3000).collect::<String>());
    }

    pub async fn exists(&self, css: &str) -> bool {
        !self.elements(css).await.is_empty()
    }

    pub async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.post(&format!("/element/{el}/click"), json!({})).await;
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.post(&format!("/element/{el}/clear"), json!({})).await;
        self.post(&format!("/element/{el}/value"), json!({"text": text})).await;
    }

    /// Sets an input's value directly (date and time pickers, whose typing is locale-bound).
    pub async fn set_value(&self, css: &str, value: &str) {
        let el = self.find(css).await;
        self.post("/execute/sync", json!({"script": "arguments[0].value = arguments[1];", "args": [{ELEMENT: el}, value]})).await;
    }

    /// Selects an option of a <select> by its value.
    pub async fn select(&self, css: &str, value: &str) {
        self.click(&format!("{css} option[value=\"{value}\"]")).await;
    }

    pub async fn text(&self, css: &str) -> String {
        let el = self.find(css).await;
        self.get(&format!("/element/{el}/text")).await.as_str().unwrap_or_default().to_owned()
    }

    /// Waits up to 5 s until the page source contains `needle`.
    pub async fn wait_for_text(&self, needle: &str) -> bool {
        for _ in 0..50 {
            if self.source().await.contains(needle) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Waits up to 5 s until the element's text contains `needle`.
    pub async fn wait_for_in(&self, css: &str, needle: &str) -> bool {
        for _ in 0..50 {
            if self.exists(css).await && self.text(css).await.contains(needle) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    pub async fn screenshot(&self, path: &std::path::Path) {
        let b64 = self.get("/screenshot").await;
        if let Some(s) = b64.as_str() {
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(s) {
                let _ = std::fs::write(path, bytes);
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session first, so that ChromeDriver quits Chromium (killing the driver alone
        // leaves the browser running): a blocking request, as Drop cannot await.
        if let Some(addr) = self.base.strip_prefix("http://") {
            use std::io::{Read, Write};
            if let Ok(mut s) = std::net::TcpStream::connect(addr) {
                let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
                let req = format!("DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", self.session);
                if s.write_all(req.as_bytes()).is_ok() {
                    let _ = s.read_to_end(&mut Vec::new());
                }
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
