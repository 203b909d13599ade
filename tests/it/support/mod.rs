//! Test support: one moto server per test binary, the CLI runner with its canary check, a
//! per-test stack spec, and direct AWS SDK clients that never go through prefect-ecs' own code.

pub mod aws;
pub mod by_hand;
pub mod moto_server;
pub mod plan;
pub mod prefect;

pub use moto_server::{Moto, free_port, setup};

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

pub const REGION: &str = "us-east-1";
pub const AZS: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];
pub const ACCOUNT_ID: &str = "0b1e2c3d-4f56-4a78-9abc-def012345678";
pub const WORKSPACE_ID: &str = "7f6e5d4c-3b2a-4190-8f7e-6d5c4b3a2910";
pub const IMAGE: &str = "prefecthq/prefect:3-python3.12";
pub const EXECUTION_MANAGED_POLICY: &str =
    "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy";

/// The moto server shared by every test of this binary (tests use disjoint names and CIDRs).
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let moto = Moto::start(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
        warm_up_ec2(&moto.endpoint);
        moto
    })
}

/// moto loads EC2 lazily and its first call takes seconds; pay that once, not inside a test's
/// first apply. The calling thread may be inside a tokio runtime, hence a thread of its own.
fn warm_up_ec2(endpoint: &str) {
    let endpoint = endpoint.to_owned();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async {
                let aws = aws::Aws::for_endpoint(&endpoint).await;
                aws.ec2
                    .describe_vpcs()
                    .send()
                    .await
                    .expect("moto answers EC2 DescribeVpcs");
            })
    })
    .join()
    .expect("EC2 warm-up");
}

/// `len` characters from `alphabet`, different on every call and in every process.
pub fn random_string(alphabet: &[u8], len: usize) -> String {
    let state = RandomState::new();
    (0..len)
        .map(|i| {
            let mut h = state.build_hasher();
            h.write_usize(i);
            alphabet[(h.finish() % alphabet.len() as u64) as usize] as char
        })
        .collect()
}

const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// A value shaped like a Prefect API key, unique to one test, that must never be printed.
pub fn canary() -> String {
    format!("pnu_{}", random_string(ALNUM, 36))
}

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Output {
    /// -1 when the process was killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    #[track_caller]
    pub fn assert_ok(self) -> Self {
        assert_eq!(self.code, 0, "expected exit 0\n{self}");
        self
    }

    #[track_caller]
    pub fn assert_code(self, code: i32) -> Self {
        assert_eq!(self.code, code, "expected exit {code}\n{self}");
        self
    }

    #[track_caller]
    pub fn assert_failed(self) -> Self {
        assert_eq!(self.code, 1, "expected exit 1\n{self}");
        self
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

#[derive(Debug, Clone)]
pub struct WorkerSpec {
    pub name: String,
    pub work_pool: String,
    pub cpu: u32,
    pub memory: u32,
    /// `architecture` as written; `None` leaves the default (x86).
    pub architecture: Option<&'static str>,
}

/// One test's stack: a unique name and VPC CIDR, the spec file in a temp dir, and the test's
/// canary. Change the public fields, then run a command: the spec is rewritten before each run.
pub struct TestStack {
    pub name: String,
    pub cidr: String,
    pub nat: &'static str,
    pub workers: Vec<WorkerSpec>,
    /// More TOML tables appended to the spec as written (e.g. `[secret]`).
    pub extra: String,
    /// `[network.endpoints] interface`: the interface endpoints, by service.
    pub interface_endpoints: Vec<&'static str>,
    /// Replaces the `[prefect]` table the spec is written with (a test of another server or
    /// credential).
    pub prefect_table: Option<String>,
    /// Replaces the `[network]` table (a test of an existing VPC).
    pub network_table: Option<String>,
    /// The workers heartbeat to their pools (the test plays the running worker, see
    /// [`prefect::keep_online`]); off for tests of a worker that never comes online.
    pub workers_online: bool,
    canary: String,
    /// Other values that must never appear in any output (e.g. a drifted secret value).
    forbidden: Vec<String>,
    dir: tempfile::TempDir,
}

impl TestStack {
    /// A stack `t-<label>-<4 random>` with one worker `<stack>-w1` and a single NAT.
    pub fn new(label: &str) -> Self {
        // A /16 per test out of 10.0.0.0/8: unique within this process, which owns its moto.
        static NEXT_NET: AtomicU8 = AtomicU8::new(1);
        let label: String = label.chars().take(16).collect();
        assert!(
            label.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
            "label {label:?}: lower-case letters and '-' only"
        );
        let name = format!("t-{label}-{}", random_string(LOWER_ALNUM, 4));
        let mut stack = TestStack {
            cidr: format!("10.{}.0.0/16", NEXT_NET.fetch_add(1, Ordering::Relaxed)),
            nat: "single",
            workers: Vec::new(),
            extra: String::new(),
            interface_endpoints: Vec::new(),
            workers_online: true,
            prefect_table: None,
            network_table: None,
            canary: canary(),
            forbidden: Vec::new(),
            dir: tempfile::tempdir().expect("temp dir"),
            name,
        };
        stack.add_worker();
        stack
    }

    /// The names of stack `name` as the spec's defaults derive them (`cluster()`, …), with no
    /// worker: for reading another stack's resources, such as an environment's.
    pub fn named(name: &str) -> Self {
        let mut stack = TestStack::new("named");
        stack.workers.clear();
        stack.name = name.to_owned();
        stack
    }

    /// Adds worker `<stack>-w<n>` (pool `<stack>-pool-<n>`, 512 CPU units, 1024 MiB) and
    /// returns its name. Pool names are unique per test: every test shares one Prefect server.
    pub fn add_worker(&mut self) -> String {
        let n = self.workers.len() + 1;
        let name = format!("{}-w{n}", self.name);
        self.workers.push(WorkerSpec {
            name: name.clone(),
            work_pool: format!("{}-pool-{n}", self.name),
            cpu: 512,
            memory: 1024,
            architecture: None,
        });
        name
    }

    pub fn worker(&self, index: usize) -> &str {
        &self.workers[index].name
    }

    pub fn canary(&self) -> &str {
        &self.canary
    }

    /// Makes every later run fail if `value` appears in its output.
    pub fn forbid(&mut self, value: &str) {
        self.forbidden.push(value.to_owned());
    }

    pub fn spec_toml(&self) -> String {
        let prefect = self.prefect_table.clone().unwrap_or_else(|| {
            format!(
                "[prefect]\napi_url = \"{}\"\napi_key_env = \"PREFECT_API_KEY\"\n",
                prefect::prefect().api_url
            )
        });
        let network = self.network_table.clone().unwrap_or_else(|| {
            format!(
                "[network]\ncidr = \"{}\"\nnat = \"{}\"\n",
                self.cidr, self.nat
            )
        });
        let mut toml = format!(
            "[stack]\nname = \"{}\"\nregion = \"{REGION}\"\n\n{prefect}\n{network}",
            self.name
        );
        if !self.interface_endpoints.is_empty() {
            toml += &format!(
                "\n[network.endpoints]\ninterface = {:?}\n",
                self.interface_endpoints
            );
        }
        for w in &self.workers {
            toml += &format!(
                "\n[[worker]]\nname = \"{}\"\nwork_pool = \"{}\"\nimage = \"{IMAGE}\"\n\
                 cpu = {}\nmemory = {}\n",
                w.name, w.work_pool, w.cpu, w.memory
            );
            if let Some(a) = w.architecture {
                toml += &format!("architecture = \"{a}\"\n");
            }
        }
        toml + "\n" + &self.extra
    }

    /// A path in the test's own temp dir (e.g. for a saved plan).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes the spec as it stands now and returns its path.
    pub fn write(&self) -> PathBuf {
        let path = self.dir.path().join("spec.toml");
        std::fs::write(&path, self.spec_toml()).expect("write spec");
        path
    }

    /// Runs the binary with `args` then the spec path, against moto, with the test's canary as
    /// `PREFECT_API_KEY`; `env` is applied last, so it can override any of that.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let spec = self.write();
        let spec = spec.to_str().expect("utf-8 temp path");
        let args: Vec<&str> = args.iter().copied().chain([spec]).collect();
        self.run_bare(&args, env)
    }

    /// Like [`TestStack::run`] without the spec path (`apply PLAN`, `show PLAN`); the spec is
    /// still written, for commands that find it through a saved plan.
    pub fn run_bare(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let out = self
            .command(args, env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("run prefect-ecs");
        self.collect(args, out)
    }

    /// Start the binary (args as given, no spec appended) and return at once, for tests that
    /// kill or interrupt a run; finish with [`TestStack::wait`].
    pub fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
        self.command(args, env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start prefect-ecs")
    }

    /// Like [`TestStack::spawn`] with `stdin` for standard input (a terminal, for the prompt).
    pub fn spawn_with_stdin(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Stdio,
    ) -> std::process::Child {
        self.command(args, env)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start prefect-ecs")
    }

    /// The output of a spawned run, checked for secrets like every other.
    pub fn wait(&self, args: &[&str], child: std::process::Child) -> Output {
        let out = child.wait_with_output().expect("wait for prefect-ecs");
        self.collect(args, out)
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        self.write();
        if self.workers_online {
            for w in &self.workers {
                prefect::keep_online(&w.work_pool, &w.name);
            }
        }
        let mut cmd = moto_server::cli(self.dir.path(), &moto().endpoint);
        cmd.args(args)
            .env("PREFECT_API_KEY", &self.canary)
            .env("PREFECT_ACCOUNT_ID", ACCOUNT_ID)
            .env("PREFECT_WORKSPACE_ID", WORKSPACE_ID)
            .env("NO_COLOR", "1")
            // A wait that would hang a CI run for the default 20 minutes fails in two.
            .env("PREFECT_ECS_TIMEOUT", "2m")
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        cmd
    }

    fn collect(&self, args: &[&str], out: std::process::Output) -> Output {
        let out = Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        for secret in std::iter::once(&self.canary).chain(&self.forbidden) {
            // Print the output with the secret masked: the failure message must not leak it either.
            assert!(
                !out.stdout.contains(secret.as_str()) && !out.stderr.contains(secret.as_str()),
                "a secret value leaked in the output of `prefect-ecs {}`:\n{}",
                args.join(" "),
                out.to_string().replace(secret.as_str(), "<SECRET>")
            );
        }
        out
    }

    pub fn plan(&self) -> Output {
        self.run(&["plan"], &[])
    }

    pub fn apply(&self) -> Output {
        self.run(&["apply", "--auto-approve", "--no-wait"], &[])
    }

    pub fn destroy(&self) -> Output {
        self.run(&["destroy", "--auto-approve", "--no-wait"], &[])
    }

    // Names the spec leaves to their defaults, derived from the stack name.

    pub fn vpc_name(&self) -> String {
        format!("{}-vpc", self.name)
    }

    pub fn secret_name(&self) -> String {
        format!("{}-prefect-api-key", self.name)
    }

    pub fn execution_role(&self) -> String {
        format!("{}-task-execution-role", self.name)
    }

    pub fn task_role(&self) -> String {
        format!("{}-worker-task-role", self.name)
    }

    pub fn flow_run_role(&self) -> String {
        format!("{}-flow-run-role", self.name)
    }

    pub fn namespace(&self) -> String {
        format!("{}.prefect.local", self.name)
    }

    pub fn log_group(&self) -> String {
        format!("/prefect-ecs/{}/workers", self.name)
    }

    pub fn cluster(&self) -> String {
        format!("{}-cluster", self.name)
    }

    /// The queue the workers' observer reads (written here, not taken from the engine).
    pub fn events_queue(&self) -> String {
        format!("{}-ecs-events", self.name)
    }

    pub fn events_rule(&self) -> String {
        format!("{}-ecs-task-events", self.name)
    }
}

impl Drop for TestStack {
    /// The test is over: its workers stop heartbeating (the harness beats for every live test).
    fn drop(&mut self) {
        for w in &self.workers {
            prefect::forget(&w.work_pool, &w.name);
        }
    }
}

impl TestStack {
    /// Every address the stack should have, per the CLI contract.
    pub fn addresses(&self) -> Vec<String> {
        let nats = match self.nat {
            "single" => 1,
            "per-az" => AZS.len(),
            "none" => 0,
            other => panic!("nat mode {other:?}"),
        };
        let mut all: Vec<String> = [
            "vpc.main",
            "internet_gateway.main",
            "route_table.public",
            "security_group.worker",
            "iam_role.execution",
            "iam_role.task",
            "iam_role_policy.execution",
            "iam_role_policy.task",
            "secret.api_key",
            "service_discovery_namespace.main",
            "log_group.workers",
            "ecs_cluster.main",
            "iam_role.flow_run",
            "sqs_queue.task_events",
            "sqs_queue_policy.task_events",
            "event_rule.task_events",
            "vpc_endpoint.s3",
        ]
        .map(String::from)
        .into();
        if !self.interface_endpoints.is_empty() {
            all.push("security_group.endpoints".into());
        }
        for e in &self.interface_endpoints {
            all.push(format!("vpc_endpoint.{e}"));
        }
        for i in 0..AZS.len() {
            all.push(format!("subnet.public[{i}]"));
            all.push(format!("subnet.private[{i}]"));
        }
        for i in 0..nats {
            all.push(format!("eip.nat[{i}]"));
            all.push(format!("nat_gateway.nat[{i}]"));
        }
        for i in 0..nats.max(1) {
            all.push(format!("route_table.private[{i}]"));
        }
        let pools: std::collections::BTreeSet<&str> =
            self.workers.iter().map(|w| w.work_pool.as_str()).collect();
        all.extend(pools.iter().map(|p| format!("prefect_work_pool.{p}")));
        for w in &self.workers {
            for kind in [
                "service_discovery_service",
                "ecs_task_definition",
                "ecs_service",
            ] {
                all.push(format!("{kind}.{}", w.name));
            }
        }
        all.sort();
        all
    }
}

/// Send `signal` to a child process.
pub fn signal(child: &std::process::Child, signal: i32) {
    // SAFETY: a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
}

/// Read a child's stdout on a thread; `wanted` is sent once a chunk holds `text`.
pub fn watch_stdout(
    child: &mut std::process::Child,
    text: &'static str,
) -> (
    std::sync::mpsc::Receiver<()>,
    std::thread::JoinHandle<String>,
) {
    let mut stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let mut sent = false;
        while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if !sent && String::from_utf8_lossy(&seen).contains(text) {
                sent = tx.send(()).is_ok();
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    (rx, reader)
}
