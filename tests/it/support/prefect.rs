//! A real Prefect server, one per test binary (started on first use, 15-30 s), and a small
//! client of its REST API that never goes through prefect-ecs' own code.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::free_port;

pub struct PrefectServer {
    /// `http://127.0.0.1:<port>/api`
    pub api_url: String,
    _lifeline: ChildStdin,
    _wrapper: std::process::Child,
    http: reqwest::blocking::Client,
    /// `user:pass` the server requires (`PREFECT_SERVER_API_AUTH_STRING`), if any.
    pub auth: Option<String>,
}

pub fn prefect() -> &'static PrefectServer {
    static SERVER: OnceLock<PrefectServer> = OnceLock::new();
    // reqwest's blocking client runs a runtime of its own, which must not be made or dropped
    // inside a test's tokio runtime: every use happens on a thread of its own.
    SERVER.get_or_init(|| {
        std::thread::spawn(|| start(None))
            .join()
            .expect("start Prefect")
    })
}

/// A second server, started on first use, that requires basic auth with `auth_string()`.
pub fn prefect_with_auth() -> &'static PrefectServer {
    static SERVER: OnceLock<PrefectServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let auth = format!(
            "ops:{}",
            super::random_string(b"abcdefghijklmnopqrstuvwxyz0123456789", 24)
        );
        std::thread::spawn(move || start(Some(auth)))
            .join()
            .expect("start Prefect")
    })
}

/// The `prefect` of the pinned venv (`scripts/setup-prefect`): the server and, with
/// prefect-aws, the real ECS worker.
pub fn prefect_bin() -> String {
    std::env::var("PREFECT_ECS_PREFECT_BIN").unwrap_or_else(|_| super::setup("setup-prefect"))
}

fn start(auth: Option<String>) -> PrefectServer {
    let exe = prefect_bin();
    let port = free_port();
    let home = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("prefect-{port}"));
    std::fs::create_dir_all(&home).expect("prefect home");
    let log = home.join("server.log");
    // Like moto's: the wrapper kills the server when this process's end closes its stdin.
    let mut wrapper = Command::new("sh")
        .arg("-c")
        .arg(
            r#""$0" server start --host 127.0.0.1 --port "$1" --no-ui </dev/null >"$2" 2>&1 & p=$!; read -r _; kill "$p""#,
        )
        .arg(&exe)
        .arg(port.to_string())
        .arg(&log)
        // Nothing of the developer's Prefect profile or PREFECT_* settings.
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("PREFECT_HOME", &home)
        .env("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        .env("DO_NOT_TRACK", "1")
        .envs(auth.iter().map(|a| ("PREFECT_SERVER_API_AUTH_STRING", a)))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {exe}: {e}"));
    let lifeline = wrapper.stdin.take().expect("piped stdin");
    let api_url = format!("http://127.0.0.1:{port}/api");
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client");
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let up = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            && http
                .get(format!("{api_url}/health"))
                .send()
                .is_ok_and(|r| r.status().is_success());
        if up {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Prefect server ({exe}) did not answer on {addr} within 120 s; see {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!("prefect server on {api_url}, log {}", log.display());
    PrefectServer {
        api_url,
        _lifeline: lifeline,
        _wrapper: wrapper,
        http,
        auth,
    }
}

impl PrefectServer {
    /// One call, retried while the server is busy (a loaded SQLite server answers 503).
    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        for _ in 0..10 {
            let answer = std::thread::scope(|s| {
                s.spawn(|| self.call_here(method.clone(), path, body.clone()))
                    .join()
                    .expect("Prefect call")
            });
            if answer.0 < 500 {
                return answer;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        self.call_here(method, path, body)
    }

    fn call_here(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.try_call_here(method, path, body)
            .unwrap_or_else(|e| panic!("Prefect answers {path}: {e}"))
    }

    fn try_call_here(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), reqwest::Error> {
        let mut req = self.http.request(method, format!("{}{path}", self.api_url));
        if let Some((user, pass)) = self.auth.as_deref().and_then(|a| a.split_once(':')) {
            req = req.basic_auth(user, Some(pass));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send()?;
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// The pool as Prefect has it, or `None`.
    pub fn pool(&self, name: &str) -> Option<Value> {
        match self.call(reqwest::Method::GET, &format!("/work_pools/{name}"), None) {
            (200, v) => Some(v),
            (404, _) => None,
            (s, v) => panic!("GET work pool {name}: {s} {v}"),
        }
    }

    /// Creates a pool as a user would in the UI (no prefect-ecs tags).
    pub fn create_pool(&self, name: &str, kind: &str, template: Value) {
        let body = json!({"name": name, "type": kind, "description": "made by hand", "base_job_template": template});
        let (s, v) = self.call(reqwest::Method::POST, "/work_pools/", Some(body));
        assert_eq!(s, 201, "create work pool {name}: {v}");
    }

    pub fn patch_pool(&self, name: &str, body: Value) {
        let (s, v) = self.call(
            reqwest::Method::PATCH,
            &format!("/work_pools/{name}"),
            Some(body),
        );
        assert_eq!(s, 204, "patch work pool {name}: {v}");
    }

    pub fn delete_pool(&self, name: &str) {
        let (s, v) = self.call(
            reqwest::Method::DELETE,
            &format!("/work_pools/{name}"),
            None,
        );
        assert!(s == 204 || s == 404, "delete work pool {name}: {s} {v}");
    }

    /// The status Prefect shows for `worker` in `pool` (`ONLINE`, `OFFLINE`), if any.
    pub fn worker_status(&self, pool: &str, worker: &str) -> Option<String> {
        let (s, v) = self.call(
            reqwest::Method::POST,
            &format!("/work_pools/{pool}/workers/filter"),
            Some(json!({})),
        );
        assert_eq!(s, 200, "workers of {pool}: {v}");
        v.as_array()?
            .iter()
            .find(|w| w["name"] == worker)
            .and_then(|w| w["status"].as_str().map(str::to_owned))
    }

    /// A flow, a deployment of it in `pool` and a flow run of that deployment, due now, made
    /// as a user's `flow.deploy()` and `prefect deployment run` would make them; returns the
    /// deployment's and the flow run's ids.
    pub fn create_flow_run(&self, pool: &str, name: &str) -> (String, String) {
        let post = |path: &str, body: Value| {
            let (s, v) = self.call(reqwest::Method::POST, path, Some(body));
            assert!(s == 200 || s == 201, "POST {path}: {s} {v}");
            v["id"].as_str().expect("an id").to_owned()
        };
        let flow = post("/flows/", json!({"name": name}));
        let deployment = post(
            "/deployments/",
            json!({"name": name, "flow_id": flow, "work_pool_name": pool}),
        );
        let run = post(
            &format!("/deployments/{deployment}/create_flow_run"),
            json!({}),
        );
        (deployment, run)
    }

    /// A flow run as Prefect has it.
    pub fn flow_run(&self, id: &str) -> Value {
        let (s, v) = self.call(reqwest::Method::GET, &format!("/flow_runs/{id}"), None);
        assert_eq!(s, 200, "flow run {id}: {v}");
        v
    }

    /// The server's default `ecs` base job template.
    pub fn ecs_template(&self) -> Value {
        let (s, v) = self.call(
            reqwest::Method::GET,
            "/collections/views/aggregate-worker-metadata",
            None,
        );
        assert_eq!(s, 200);
        v["prefect-aws"]["ecs"]["default_base_job_configuration"].clone()
    }
}

/// The interval the harness's workers announce: Prefect shows a worker ONLINE for three of
/// them after its last heartbeat. They beat far more often (every 2 s), so a loaded machine
/// never lets one go OFFLINE by accident.
pub const HEARTBEAT_INTERVAL: u64 = 20;

/// The (pool, worker) pairs [`keep_online`] heartbeats for, until [`forget`].
static ONLINE: Mutex<BTreeSet<(String, String)>> = Mutex::new(BTreeSet::new());

fn online() -> MutexGuard<'static, BTreeSet<(String, String)>> {
    ONLINE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Play the part of the ECS tasks moto never runs: from now on, `worker` sends a heartbeat to
/// `pool` every two seconds (to a pool that does not exist yet, the heartbeat is a 404 until
/// it does), as a running `prefect worker start --name <worker>` would, until [`forget`].
///
/// Each pair beats on a thread of its own, and nothing ends it but `forget`: an error or a
/// slow answer (a loaded SQLite server can hold a write for many seconds) only delays that
/// pair's next heartbeat, never another test's.
pub fn keep_online(pool: &str, worker: &str) {
    let key = (pool.to_owned(), worker.to_owned());
    if !online().insert(key.clone()) {
        return;
    }
    let server = prefect();
    std::thread::spawn(move || {
        while online().contains(&key) {
            let _ = server.try_call_here(
                reqwest::Method::POST,
                &format!("/work_pools/{}/workers/heartbeat", key.0),
                Some(json!({"name": key.1, "heartbeat_interval_seconds": HEARTBEAT_INTERVAL})),
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    });
}

/// Stop the heartbeats of `worker` in `pool` (its test is over).
pub fn forget(pool: &str, worker: &str) {
    online().remove(&(pool.to_owned(), worker.to_owned()));
}

/// A pool's variable default, e.g. `default_of(&pool, "cluster")`.
pub fn default_of<'a>(pool: &'a Value, variable: &str) -> &'a Value {
    &pool["base_job_template"]["variables"]["properties"][variable]["default"]
}
