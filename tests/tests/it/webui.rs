//! The master's web UI in a real headless Chromium (Debian's `chromium` and `chromium-driver`),
//! driven over WebDriver: a small client of the W3C protocol on reqwest (`Browser`), the
//! chromedriver and every Chromium process it started killed by pid when it drops. Screenshots of
//! each page go to `$CARGO_TARGET_DIR/webui-screenshots/`.

use anyhow::{bail, Context, Result};
use base64::Engine;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use strata_schema::TaskState;
use strata_tests::framework::{task, TestFramework};
use strata_tests::{free_port, http_get, http_request, http_response, http_send, Cluster};

const T: Duration = Duration::from_secs(30);
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The pids of `root`'s descendants (from /proc's parent links), deepest last.
fn descendants(root: i32) -> Vec<i32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid …: comm may hold spaces and parentheses.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if let Some(ppid) = ppid {
            parents.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// chromedriver on a free loopback port, with one Chromium session.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    shots: PathBuf,
    /// Chromium's profile, removed after the processes are killed (fields drop after `drop`).
    profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Every process chromedriver started (Chromium, its zygotes, renderers and GPU process),
        // collected before any dies (an orphan would be reparented out of reach), then the
        // driver itself: all by pid.
        let pid = self.driver.id() as i32;
        let tree = descendants(pid);
        for p in tree.iter().rev() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    async fn start() -> Result<Self> {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: the web UI tests need Debian's chromium and chromium-driver \
                 packages (`apt-get install chromium chromium-driver`, or `cargo xtask ci`, which \
                 installs CI_PACKAGES)"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn chromedriver")?;
        let shots = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| strata_tests::bin_dir().join(".."))
            .join("webui-screenshots");
        std::fs::create_dir_all(&shots)?;
        let mut browser = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(60))
                .build()?,
            shots,
            profile: tempfile::Builder::new()
                .prefix("strata-webui-chromium-")
                .tempdir()?,
        };
        let deadline = std::time::Instant::now() + T;
        loop {
            let ready = browser
                .http
                .get(format!("{}/status", browser.base))
                .send()
                .await;
            if ready.is_ok() {
                break;
            }
            if std::time::Instant::now() > deadline {
                bail!("chromedriver did not answer on {}", browser.base);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,1000", "--no-proxy-server",
                         format!("--user-data-dir={}", browser.profile.path().display())],
            },
        }}});
        let created = browser.call("POST", "/session", caps).await?;
        browser.session = created["sessionId"]
            .as_str()
            .context("no sessionId")?
            .to_string();
        Ok(browser)
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self.http.post(&url).json(&body),
        };
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let value: Value = response
            .json()
            .await
            .with_context(|| format!("{method} {path}"))?;
        if !status.is_success() {
            bail!("WebDriver {method} {path}: {status}: {value}");
        }
        Ok(value.get("value").cloned().unwrap_or(Value::Null))
    }

    async fn session_call(&self, method: &str, path: &str, body: Value) -> Result<Value> {
        self.call(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    async fn goto(&self, url: &str) -> Result<()> {
        self.session_call("POST", "/url", json!({ "url": url }))
            .await?;
        Ok(())
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    async fn js(&self, script: &str, args: Value) -> Result<Value> {
        self.session_call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// The text of the first element matching `selector`, or null.
    async fn text(&self, selector: &str) -> Result<Option<String>> {
        let v = self
            .js(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                json!([selector]),
            )
            .await?;
        Ok(v.as_str().map(str::to_string))
    }

    /// Waits until `check` (on the page's JS result of `script`) holds; returns that result.
    async fn wait(
        &self,
        what: &str,
        script: &str,
        args: Value,
        check: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = std::time::Instant::now() + T;
        loop {
            let v = self.js(script, args.clone()).await?;
            if check(&v) {
                return Ok(v);
            }
            if std::time::Instant::now() > deadline {
                let body = self.js("return document.body.innerText", json!([])).await?;
                bail!(
                    "timed out waiting for {what}; last {v}; page:\n{}",
                    body.as_str().unwrap_or("")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the text of `selector` satisfies `check`.
    async fn wait_text(&self, selector: &str, check: impl Fn(&str) -> bool) -> Result<String> {
        let v = self
            .wait(
                selector,
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                json!([selector]),
                |v| v.as_str().is_some_and(&check),
            )
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let data = self.session_call("GET", "/screenshot", Value::Null).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().context("screenshot is not a string")?)?;
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }
}

/// The assets and endpoints behind the UI, without a browser: content types, caching headers,
/// the utilisation samples, and CORS on exactly the agent's read-only GETs.
#[test]
fn webui_assets_utilization_and_agent_cors() {
    let cluster = Cluster::start("cpus:2;mem:1024;disk:100").unwrap();
    let master = cluster.master.addr();
    let header = |h: &[(String, String)], name: &str| {
        h.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    };
    for (path, content_type, needle) in [
        ("/", "text/html", "/webui/app.js"),
        ("/webui/app.js", "text/javascript", "hashchange"),
        ("/webui/style.css", "text/css", "pre.log"),
    ] {
        let (code, headers, body) = http_response(&master, "GET", path).unwrap();
        assert_eq!(code, 200, "{path}: {body}");
        assert!(
            header(&headers, "content-type")
                .unwrap()
                .starts_with(content_type),
            "{path}: {headers:?}"
        );
        assert_eq!(
            header(&headers, "cache-control").as_deref(),
            Some("no-cache"),
            "{path}"
        );
        assert!(header(&headers, "etag").is_some(), "{path}: {headers:?}");
        assert!(body.contains(needle), "{path}");
    }
    // The first sample is taken when the master starts leading.
    let util = http_get(&master, "/master/utilization").unwrap();
    assert_eq!(util["period_secs"], 10);
    let samples = util["samples"].as_array().unwrap();
    assert!(!samples.is_empty(), "{util}");
    let deadline = std::time::Instant::now() + T;
    // Samples after the agent registered count its resources.
    while http_get(&master, "/master/utilization").unwrap()["samples"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["cpus_total"] != 2.0)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no sample with the agent's cpus"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let agent = cluster.agent(0).addr();
    for path in ["/state", "/monitor/statistics"] {
        let (code, headers, _) = http_response(&agent, "GET", path).unwrap();
        assert_eq!(code, 200, "{path}");
        assert_eq!(
            header(&headers, "access-control-allow-origin").as_deref(),
            Some("*"),
            "{path}"
        );
    }
    // A sandbox read outside the sandboxes is refused, with the header (the browser shows the
    // error); endpoints that are not the UI's get none.
    for path in ["/files/read?path=/etc/hostname", "/files/browse?path=/etc"] {
        let (_, headers, _) = http_response(&agent, "GET", path).unwrap();
        assert_eq!(
            header(&headers, "access-control-allow-origin").as_deref(),
            Some("*"),
            "{path}"
        );
    }
    for (method, path) in [
        ("GET", "/metrics"),
        ("POST", "/containers/update?task_id=x&resources=cpus:1"),
    ] {
        let (_, headers, _) = http_response(&agent, method, path).unwrap();
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            None,
            "{method} {path}"
        );
    }
}

fn count_selector(sel: &str) -> String {
    format!("return document.querySelectorAll({sel:?}).length;")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webui_pages_in_chromium() {
    let cluster = Cluster::start("cpus:2;mem:1024;disk:100").unwrap();
    let master = cluster.master.addr();
    let mut fw = TestFramework::subscribe(&master, "webui-e2e")
        .await
        .unwrap();
    let offer = fw.offer_with("cpus:1;mem:128", T).await.unwrap();
    let agent_id = offer.agent_id.to_string();
    fw.launch(
        &offer,
        vec![task(
            "printer",
            &offer.agent_id,
            "cpus:0.5;mem:64",
            "echo to-stderr >&2; i=0; while true; do echo \"webui line $i\"; i=$((i+1)); sleep 0.5; done",
        )],
    )
    .await
    .unwrap();
    fw.wait_for("printer", T, |s| s == TaskState::Running)
        .await
        .unwrap();
    let state = http_get(&master, "/state").unwrap();
    let fw_id = state["frameworks"][0]["id"].as_str().unwrap().to_string();

    let browser = Browser::start().await.unwrap();
    let ui = format!("http://{master}/");

    // Overview: the cluster's real numbers.
    browser.goto(&ui).await.unwrap();
    browser
        .wait_text("#count-agents", |t| t == "1")
        .await
        .unwrap();
    browser
        .wait_text("#count-tasks", |t| t == "1")
        .await
        .unwrap();
    browser
        .wait_text("#count-TASK_RUNNING", |t| t == "1")
        .await
        .unwrap();
    browser
        .wait_text("#count-frameworks", |t| t == "1")
        .await
        .unwrap();
    browser
        .wait_text("#alloc-cpus", |t| t.starts_with("0.5 / 2 "))
        .await
        .unwrap();
    browser
        .wait("the utilisation chart", "const s = document.querySelector('#utilization-chart'); return s ? Number(s.dataset.samples) : 0;", json!([]), |v| v.as_u64().unwrap_or(0) >= 1)
        .await
        .unwrap();
    // A line each for cpus, mem and disk (the cluster has no gpus).
    browser
        .wait(
            "the chart's lines",
            &count_selector("#utilization-chart polyline"),
            json!([]),
            |v| v == 3,
        )
        .await
        .unwrap();
    browser.screenshot("overview").await.unwrap();

    // Agents: the real agent id, and its page with the task's container usage read from the
    // agent itself (cross-origin: needs the agent's CORS header).
    browser.goto(&format!("{ui}#/agents")).await.unwrap();
    browser
        .wait(
            "the agent's row",
            &count_selector(&format!("tr[data-agent='{agent_id}']")),
            json!([]),
            |v| v == 1,
        )
        .await
        .unwrap();
    browser.screenshot("agents").await.unwrap();
    browser
        .goto(&format!("{ui}#/agents/{agent_id}"))
        .await
        .unwrap();
    browser
        .wait_text("#agent-id", |t| t == agent_id)
        .await
        .unwrap();
    browser.wait(
        "the container's usage",
        "const r = document.querySelector(\"tr[data-container='printer']\"); return r ? r.cells[2].textContent : null;",
        json!([]),
        // The CPU rate needs two polls.
        |v| v.as_str().is_some_and(|t| !t.starts_with('…')),
    ).await.unwrap();
    browser.screenshot("agent").await.unwrap();

    // Frameworks and roles.
    browser.goto(&format!("{ui}#/frameworks")).await.unwrap();
    browser
        .wait(
            "the framework's row",
            &count_selector(&format!("tr[data-framework='{fw_id}']")),
            json!([]),
            |v| v == 1,
        )
        .await
        .unwrap();
    browser.screenshot("frameworks").await.unwrap();
    let (code, body) = http_send(
        &master,
        "PUT",
        "/weights",
        &json!([{"role": "ops", "weight": 2.5}]),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    browser.goto(&format!("{ui}#/roles")).await.unwrap();
    browser.wait(
        "the role's weight",
        "const r = document.querySelector(\"#roles tr[data-role='ops']\"); return r ? r.cells[1].textContent : null;",
        json!([]),
        |v| v == "2.5",
    ).await.unwrap();
    browser.screenshot("roles").await.unwrap();

    // Tasks, filtered through the URL.
    browser
        .goto(&format!("{ui}#/tasks?name=nomatch"))
        .await
        .unwrap();
    browser
        .wait_text("#task-count", |t| t == "0 tasks")
        .await
        .unwrap();
    // Typing a filter puts it in the URL (shareable) and filters.
    browser
        .js(
            "const i = document.querySelector('input[name=name]'); i.value = 'print'; \
             i.dispatchEvent(new Event('input', {bubbles: true})); return null;",
            json!([]),
        )
        .await
        .unwrap();
    browser
        .wait(
            "the name filter in the URL",
            "return location.hash;",
            json!([]),
            |v| v == "#/tasks?name=print",
        )
        .await
        .unwrap();
    browser
        .wait_text("#task-count", |t| t == "1 tasks")
        .await
        .unwrap();
    browser
        .goto(&format!("{ui}#/tasks?agent={agent_id}&state=TASK_FINISHED"))
        .await
        .unwrap();
    browser
        .wait_text("#task-count", |t| t == "0 tasks")
        .await
        .unwrap();
    browser
        .goto(&format!("{ui}#/tasks?state=TASK_RUNNING&framework={fw_id}"))
        .await
        .unwrap();
    browser
        .wait(
            "the running task",
            &count_selector("tr[data-task='printer']"),
            json!([]),
            |v| v == 1,
        )
        .await
        .unwrap();
    let selected = browser
        .js(
            "return document.querySelector('select[name=state]').value",
            json!([]),
        )
        .await
        .unwrap();
    assert_eq!(selected, "TASK_RUNNING");
    browser.screenshot("tasks").await.unwrap();

    // The task's page: stdout, followed while the task writes.
    browser
        .goto(&format!("{ui}#/tasks/{fw_id}/printer"))
        .await
        .unwrap();
    browser
        .js("window.__notReloaded = true; return null;", json!([]))
        .await
        .unwrap();
    browser
        .wait_text("#task-state", |t| t == "TASK_RUNNING")
        .await
        .unwrap();
    let first = browser
        .wait_text("#log", |t| t.contains("webui line 1\n"))
        .await
        .unwrap();
    let last = first
        .lines()
        .filter_map(|l| l.strip_prefix("webui line "))
        .filter_map(|n| n.parse::<u64>().ok())
        .max()
        .unwrap();
    let later = format!("webui line {}\n", last + 3);
    browser
        .wait_text("#log", |t| t.contains(&later))
        .await
        .unwrap();
    let log = browser.text("#log").await.unwrap().unwrap();
    let numbers: Vec<u64> = log
        .lines()
        .filter_map(|l| l.strip_prefix("webui line "))
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(
        numbers,
        (0..numbers.len() as u64).collect::<Vec<_>>(),
        "lines lost or repeated:\n{log}"
    );
    let image = browser.text("#task-image").await.unwrap().unwrap();
    assert!(image.starts_with("— (no image"), "{image}");
    let history = browser.text("#status-history").await.unwrap().unwrap();
    assert!(history.contains("TASK_RUNNING"), "{history}");
    // The sandbox's file list, where the agent serves /files/browse.
    let (browse, _) =
        http_request(&cluster.agent(0).addr(), "GET", "/files/browse?path=/").unwrap();
    if browse != 404 {
        for file in ["stdout", "stderr"] {
            browser
                .wait(
                    file,
                    &count_selector(&format!("#file-list tr[data-file='{file}']")),
                    json!([]),
                    |v| v == 1,
                )
                .await
                .unwrap();
        }
        // Opening stderr shows it.
        browser.js("document.querySelector(\"#file-list a[data-file='stderr']\").click(); return null;", json!([])).await.unwrap();
        browser
            .wait_text("#log", |t| t == "to-stderr\n")
            .await
            .unwrap();
    } else {
        eprintln!("the agent has no /files/browse: the sandbox file list is not checked");
    }
    browser.screenshot("task").await.unwrap();

    // Killed through the master: the page shows it without a reload.
    let (code, body) = http_request(&master, "POST", "/tasks/kill?task_id=printer").unwrap();
    assert_eq!(code, 202, "{body}");
    browser
        .wait_text("#task-state", |t| t == "TASK_KILLED")
        .await
        .unwrap();
    let kept = browser
        .js("return window.__notReloaded === true", json!([]))
        .await
        .unwrap();
    assert_eq!(kept, true, "the page was reloaded");
    browser.screenshot("task-killed").await.unwrap();

    // A drained agent reads "draining" on the overview and the agents page.
    let (code, body) = http_send(
        &master,
        "POST",
        "/drain",
        &json!({ "agent_id": { "value": agent_id } }),
    )
    .unwrap();
    assert!(code == 200 || code == 202, "{code}: {body}");
    browser.goto(&ui).await.unwrap();
    browser
        .wait_text("#count-agents-draining", |t| t == "1")
        .await
        .unwrap();
    browser
        .wait_text("#count-agents-active", |t| t == "0")
        .await
        .unwrap();
    browser.goto(&format!("{ui}#/agents")).await.unwrap();
    browser
        .wait(
            "the agent's state",
            &format!("const r = document.querySelector(\"tr[data-agent='{agent_id}']\"); return r ? r.cells[2].textContent : null;"),
            json!([]),
            |v| v == "draining",
        )
        .await
        .unwrap();
    drop(browser);
    fw.wait_terminal("printer", T).await.unwrap();
}

/// A standby sends the UI's browser to the leader: the page, its assets and the samples all
/// redirect (307, same path).
#[test]
fn webui_on_a_standby_redirects_to_the_leader() {
    let zk = strata_tests::zookeeper::ZooKeeper::start().unwrap();
    let url = zk.url(&format!("/strata-{}-webui", std::process::id()));
    let cluster = Cluster::start_ha(&url, 2, &[], &["--zk-session-timeout", "2000ms"]).unwrap();
    let leader = cluster.master.addr();
    assert_eq!(http_request(&leader, "GET", "/").unwrap().0, 200);
    let standby = cluster.standbys[0].addr();
    // The standby learns who leads from ZooKeeper shortly after the leader is elected: until
    // then it answers 503.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while http_request(&standby, "GET", "/").unwrap().0 == 503
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for path in ["/", "/webui/app.js", "/master/utilization"] {
        let (code, headers, body) = http_response(&standby, "GET", path).unwrap();
        assert_eq!(code, 307, "{path}: {body}");
        let location = format!("http://{leader}{path}");
        assert!(
            headers.contains(&("location".to_string(), location)),
            "{path}: {headers:?}"
        );
    }
}
