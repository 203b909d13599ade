//! Starting a moto server and the binary against it: shared by the integration tests and the benchmark harness
//! (`tests/bench`), which includes this file by path.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// A moto server on a free loopback port, alive as long as this process.
pub struct Moto {
    pub endpoint: String,
    /// Never written to: moto's wrapper shell kills moto when it reads EOF here, which happens
    /// when this process exits, however it exits (statics are never dropped).
    _lifeline: ChildStdin,
    /// Never waited for: it ends with the test process, when the lifeline closes.
    _wrapper: std::process::Child,
}

impl Moto {
    /// Starts `$MOTO_SERVER` (else the one `scripts/setup-moto` installs), logging to
    /// `log_dir`, and returns once it listens.
    pub fn start(log_dir: &Path) -> Moto {
        let exe = std::env::var("MOTO_SERVER").unwrap_or_else(|_| setup("setup-moto"));
        let port = free_port();
        let log = log_dir.join(format!("moto-{port}.log"));
        let mut wrapper = Command::new("sh")
            .arg("-c")
            .arg(
                r#""$0" -H 127.0.0.1 -p "$1" </dev/null >"$2" 2>&1 & moto=$!; read -r _; kill "$moto""#,
            )
            .arg(&exe)
            .arg(port.to_string())
            .arg(&log)
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            // RunTask for the real prefect-aws worker (`moto-patch/sitecustomize.py`).
            .env(
                "PYTHONPATH",
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/moto-patch"),
            )
            .stdin(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {exe} through sh: {e}"));
        let lifeline = wrapper.stdin.take().expect("piped stdin");

        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto ({exe}) did not listen on {addr} within 30 s; see {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("moto on {addr}, log {}", log.display());
        Moto {
            endpoint: format!("http://{addr}"),
            _lifeline: lifeline,
            _wrapper: wrapper,
        }
    }
}

/// Runs `scripts/<name>` (`setup-moto`, `setup-prefect`), which installs the pinned program
/// if needed and prints its path.
pub fn setup(name: &str) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name);
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(out.status.success(), "{} failed", script.display());
    String::from_utf8(out.stdout)
        .expect("utf-8 path")
        .trim()
        .to_owned()
}

/// The binary under test, isolated from the developer's shell (profiles, RUST_LOG, real
/// credentials) and pointed at `endpoint` with dummy credentials, `home` as its home.
pub fn cli(home: &Path, endpoint: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_prefect-ecs"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.join("no-aws-credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1");
    cmd
}

pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}
