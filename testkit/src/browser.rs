//! Headless Chromium for the display tests, driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: JSON messages separated by NUL on file descriptors 3 and 4), so
//! no debugging port and no websocket client are needed. Killed, its profile removed, on drop.
//!
//! Chromium is `$CHROMIUM` if set, else the first of `chromium`, `chromium-browser`,
//! `google-chrome` on `PATH` (`scripts/services` installs Debian's `chromium`).

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use crate::names::unique;
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStdin, Command},
    sync::mpsc,
};

/// Bound on one DevTools command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(45);

/// Where Chromium is: `$CHROMIUM`, else the first known name found on `PATH`.
pub fn find_chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no Chromium found (tried $CHROMIUM, then chromium, chromium-browser and \
                 google-chrome on PATH): run scripts/services, or apt-get install chromium"
            )
        })
}

/// One headless Chromium with one page open.
pub struct Browser {
    child: Child,
    commands: ChildStdin,
    messages: mpsc::Receiver<Value>,
    next_id: u64,
    /// The DevTools session of the page.
    session: String,
    profile: PathBuf,
}

impl Browser {
    /// Starts Chromium with a fresh profile and opens a blank page of `width`×`height`.
    pub async fn launch(width: u32, height: u32) -> Self {
        let chromium = find_chromium();
        let profile = std::env::temp_dir().join(unique("e2e-chromium"));
        std::fs::create_dir_all(&profile).expect("profile dir");
        let log = std::fs::File::create(profile.join("chromium.log")).expect("log file");
        // The pipe is fds 3 (commands in) and 4 (messages out): the shell moves our stdin and
        // stdout there, then becomes Chromium.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>/dev/null"#)
            .arg(&chromium)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--remote-debugging-pipe",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-sync",
                "--mute-audio",
                "--hide-scrollbars",
                &format!("--window-size={width},{height}"),
                &format!("--user-data-dir={}", profile.display()),
                "about:blank",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()));
        let commands = child.stdin.take().expect("stdin piped");
        let stdout = child.stdout.take().expect("stdout piped");
        let (sender, messages) = mpsc::channel(256);
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout);
            let mut message = Vec::new();
            loop {
                message.clear();
                match reader.read_until(0, &mut message).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if message.last() == Some(&0) {
                    message.pop();
                }
                let Ok(value) = serde_json::from_slice::<Value>(&message) else {
                    continue;
                };
                if sender.send(value).await.is_err() {
                    return;
                }
            }
        });
        let mut browser = Self {
            child,
            commands,
            messages,
            next_id: 0,
            session: String::new(),
            profile,
        };
        let target = browser
            .command(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let target_id = target["targetId"].as_str().expect("target id").to_owned();
        let attached = browser
            .command(
                None,
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await;
        browser.session = attached["sessionId"]
            .as_str()
            .expect("session id")
            .to_owned();
        browser
            .page(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
            )
            .await;
        browser
    }

    /// Sends one DevTools command (to the page's session, or the browser's with `None`) and
    /// returns its result; panics on an error answer or after `COMMAND_TIMEOUT`.
    async fn command(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        match self.try_command(session, method, params).await {
            Ok(result) => result,
            Err(error) => panic!("{method} failed: {error}"),
        }
    }

    /// A command, its error (Chromium's answer) returned rather than a panic.
    async fn try_command(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).expect("serialises");
        bytes.push(0);
        let sent = async {
            self.commands.write_all(&bytes).await?;
            self.commands.flush().await
        };
        if let Err(error) = tokio::time::timeout(COMMAND_TIMEOUT, sent).await {
            panic!(
                "{method}: cannot write to Chromium ({error}); {}",
                self.log()
            );
        }
        let answer = tokio::time::timeout(COMMAND_TIMEOUT, async {
            // Events (messages without our id) are not used: skip them.
            while let Some(message) = self.messages.recv().await {
                if message["id"] == id {
                    return Some(message);
                }
            }
            None
        })
        .await;
        let answer = match answer {
            Ok(Some(answer)) => answer,
            Ok(None) => panic!("{method}: Chromium went away; {}", self.log()),
            Err(_) => panic!(
                "{method}: no answer within {COMMAND_TIMEOUT:?}; {}",
                self.log()
            ),
        };
        match answer.get("error") {
            Some(error) => Err(error.clone()),
            None => Ok(answer["result"].clone()),
        }
    }

    /// The end of Chromium's own log, for failure messages.
    fn log(&self) -> String {
        let text = std::fs::read_to_string(self.profile.join("chromium.log")).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("chromium log:\n{}", tail.join("\n"))
    }

    async fn page(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.command(Some(&session), method, params).await
    }

    /// Renders the page at `factor` device pixels per CSS pixel (a sharper screenshot).
    pub async fn scale(&mut self, width: u32, height: u32, factor: f64) {
        self.page(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": factor, "mobile": false}),
        )
        .await;
    }

    /// Opens `url` as the paired test manager device (its cookie set first) and waits until
    /// the document has loaded.
    pub async fn navigate(&mut self, url: &str) {
        self.set_device_cookie(url, crate::http::TEST_TOKEN).await;
        self.navigate_unpaired(url).await;
    }

    /// Sets the device cookie the box's pairing would set, for `url`'s origin.
    pub async fn set_device_cookie(&mut self, url: &str, token: &str) {
        self.set_cookie(url, "kitchen_device", token).await;
    }

    /// Sets an `HttpOnly; SameSite=Strict` cookie for `url`'s origin.
    pub async fn set_cookie(&mut self, url: &str, name: &str, value: &str) {
        let answer = self
            .page(
                "Network.setCookie",
                json!({"name": name, "value": value, "url": url,
                       "httpOnly": true, "sameSite": "Strict"}),
            )
            .await;
        assert_eq!(answer["success"], json!(true), "cookie set: {answer}");
    }

    /// Opens `url` with whatever cookies the browser has, and waits until it has loaded.
    pub async fn navigate_unpaired(&mut self, url: &str) {
        let answer = self.page("Page.navigate", json!({ "url": url })).await;
        if let Some(error) = answer.get("errorText").and_then(Value::as_str) {
            panic!("cannot open {url}: {error}");
        }
        self.wait_for(
            "the page to load",
            Duration::from_secs(10),
            "document.readyState === 'complete'",
        )
        .await;
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns its value as JSON;
    /// panics if it throws.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let answer = self
            .page(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if let Some(exception) = answer.get("exceptionDetails") {
            panic!("{expression} threw: {exception}");
        }
        answer["result"]["value"].clone()
    }

    /// Polls `expression` until it is truthy; panics after `timeout` with the last value.
    pub async fn wait_for(&mut self, what: &str, timeout: Duration, expression: &str) -> Value {
        self.wait_until(what, timeout, expression, |value| {
            !matches!(value, Value::Null | Value::Bool(false))
        })
        .await
    }

    /// Polls `expression` until its value equals `expected`; panics after `timeout` with the
    /// last value.
    pub async fn wait_for_value(
        &mut self,
        what: &str,
        timeout: Duration,
        expression: &str,
        expected: &Value,
    ) {
        self.wait_until(what, timeout, expression, |value| value == expected)
            .await;
    }

    async fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        expression: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            // The page may be navigating (a reload after pairing, say): evaluate again later.
            let session = self.session.clone();
            let answer = self
                .try_command(
                    Some(&session),
                    "Runtime.evaluate",
                    json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
                )
                .await;
            let value = match answer {
                Ok(answer) if answer.get("exceptionDetails").is_none() => {
                    answer["result"]["value"].clone()
                }
                Ok(_) | Err(_) => Value::Null,
            };
            if done(&value) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; last value: {value}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types `text` into the focused element as a keyboard would (`Input.insertText`).
    pub async fn type_text(&mut self, text: &str) {
        self.page("Input.insertText", json!({ "text": text })).await;
    }

    /// Presses and releases one key as a keyboard or a bump bar would
    /// (`Input.dispatchKeyEvent`): a single character (`"5"`, `"a"`, `"O"`) or a key name
    /// (`"Enter"`, `"ArrowRight"`, `"Backspace"`, `"Tab"`, `"PageUp"`, `"PageDown"`, `"End"`,
    /// `"Insert"`, `"ArrowLeft"`, `"ArrowUp"`, `"ArrowDown"`, `"Escape"`).
    pub async fn press_key(&mut self, key: &str) {
        let (down, up) = key_events(key);
        self.page("Input.dispatchKeyEvent", down).await;
        self.page("Input.dispatchKeyEvent", up).await;
    }

    /// Holds `key` down long enough for the keyboard to repeat it `repeats` times, as a
    /// keyboard does: the first repeat after 500 ms, then one every 50 ms (`autoRepeat`
    /// key-downs); then releases it.
    pub async fn hold_key(&mut self, key: &str, repeats: usize) {
        let (down, up) = key_events(key);
        self.page("Input.dispatchKeyEvent", down.clone()).await;
        tokio::time::sleep(Duration::from_millis(450)).await;
        for _ in 0..repeats {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut again = down.clone();
            again["autoRepeat"] = json!(true);
            self.page("Input.dispatchKeyEvent", again).await;
        }
        self.page("Input.dispatchKeyEvent", up).await;
    }

    /// Types `text` and then Enter as a keyboard-wedge scanner does (each character its own
    /// key press), a few milliseconds apart: every key event is written to Chromium at once
    /// and the answers are awaited after, so no round trip to the test slows the burst.
    pub async fn scan_burst(&mut self, text: &str) {
        let keys: Vec<String> = text
            .chars()
            .map(|c| c.to_string())
            .chain(["Enter".to_owned()])
            .collect();
        let mut bytes = Vec::new();
        let mut ids = Vec::new();
        for key in &keys {
            let (down, up) = key_events(key);
            for params in [down, up] {
                self.next_id += 1;
                ids.push(self.next_id);
                let message = json!({"id": self.next_id, "method": "Input.dispatchKeyEvent",
                                     "params": params, "sessionId": self.session});
                bytes.extend(serde_json::to_vec(&message).expect("serialises"));
                bytes.push(0);
            }
        }
        let sent = async {
            self.commands.write_all(&bytes).await?;
            self.commands.flush().await
        };
        if let Err(error) = tokio::time::timeout(COMMAND_TIMEOUT, sent).await {
            panic!(
                "scan burst: cannot write to Chromium ({error}); {}",
                self.log()
            );
        }
        let mut waiting: std::collections::BTreeSet<u64> = ids.into_iter().collect();
        let answered = tokio::time::timeout(COMMAND_TIMEOUT, async {
            while let Some(message) = self.messages.recv().await {
                if let Some(id) = message["id"].as_u64() {
                    assert!(
                        message.get("error").is_none(),
                        "scan burst key refused: {message}"
                    );
                    waiting.remove(&id);
                }
                if waiting.is_empty() {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(
            answered == Ok(true),
            "scan burst: Chromium did not answer every key; {}",
            self.log()
        );
    }

    /// Taps the element `selector` names as a finger would: a real mouse press and release at
    /// its centre (after scrolling it into view), once it has stayed put for 150 ms — a page
    /// still settling (a banner going away as its stream connects) would otherwise move another
    /// button under the press. Panics if it is not there or not on top.
    pub async fn tap(&mut self, selector: &str) {
        let mut point = self.centre_of(selector).await;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let again = self.centre_of(selector).await;
            if again == point {
                break;
            }
            point = again;
        }
        assert!(
            point["onTop"] == true,
            "{selector} is not there or is covered: {point}"
        );
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.page(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": point["x"], "y": point["y"], "button": "left",
                       "clickCount": 1}),
            )
            .await;
        }
    }

    /// The centre of the element `selector` names (scrolled into view) and whether it is on top
    /// there; `null` when there is none.
    async fn centre_of(&mut self, selector: &str) -> Value {
        let selector_json = json!(selector);
        self.eval(&format!(
            "(() => {{
                    const element = document.querySelector({selector_json});
                    if (!element) return null;
                    element.scrollIntoView({{ block: 'center' }});
                    const r = element.getBoundingClientRect();
                    const x = r.left + r.width / 2, y = r.top + r.height / 2;
                    const hit = document.elementFromPoint(x, y);
                    return {{ x, y, onTop: !!hit && (hit === element || element.contains(hit)) }};
                }})()"
        ))
        .await
    }

    /// Saves a PNG of the page as it is now.
    pub async fn screenshot(&mut self, path: &Path) {
        let shot = self
            .page("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("png data"))
            .expect("base64 png");
        std::fs::write(path, png).expect("screenshot written");
    }

    /// Closes Chromium and waits (bounded) for it to exit.
    pub async fn close(mut self) {
        self.next_id += 1;
        let mut bytes = serde_json::to_vec(&json!({"id": self.next_id, "method": "Browser.close"}))
            .expect("serialises");
        bytes.push(0);
        let _ = self.commands.write_all(&bytes).await;
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromium writes to its profile until it is gone: wait (bounded) before removing it.
        let _ = self.child.start_kill();
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        for _ in 0..3 {
            if std::fs::remove_dir_all(&self.profile).is_ok() || !self.profile.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The `Input.dispatchKeyEvent` parameters pressing and releasing `key`.
fn key_events(key: &str) -> (Value, Value) {
    let mut chars = key.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        let code = if c.is_ascii_digit() {
            format!("Digit{c}")
        } else if c.is_ascii_alphabetic() {
            format!("Key{}", c.to_ascii_uppercase())
        } else if c == ' ' {
            "Space".to_owned()
        } else {
            String::new()
        };
        let virtual_key = if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase() as u32
        } else {
            0
        };
        let text = c.to_string();
        return (
            json!({"type": "keyDown", "key": text, "code": code, "text": text,
                   "unmodifiedText": text, "windowsVirtualKeyCode": virtual_key}),
            json!({"type": "keyUp", "key": text, "code": code, "windowsVirtualKeyCode": virtual_key}),
        );
    }
    let virtual_key = match key {
        "Backspace" => 8,
        "Tab" => 9,
        "Enter" => 13,
        "Escape" => 27,
        "PageUp" => 33,
        "PageDown" => 34,
        "End" => 35,
        "Home" => 36,
        "ArrowLeft" => 37,
        "ArrowUp" => 38,
        "ArrowRight" => 39,
        "ArrowDown" => 40,
        "Insert" => 45,
        other => panic!("no key code known for {other:?}"),
    };
    let down = if key == "Enter" {
        json!({"type": "keyDown", "key": key, "code": key, "text": "\r",
               "unmodifiedText": "\r", "windowsVirtualKeyCode": virtual_key})
    } else {
        json!({"type": "rawKeyDown", "key": key, "code": key, "windowsVirtualKeyCode": virtual_key})
    };
    (
        down,
        json!({"type": "keyUp", "key": key, "code": key, "windowsVirtualKeyCode": virtual_key}),
    )
}
