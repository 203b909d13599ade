//! The benchmark harness (issue 6): the real binary against moto behind the realism proxy, with
//! a fixed latency on every call and the time-scaled model of AWS's operation durations. For
//! each scenario it prints the wall time, the API calls by operation, the round-trip depth and,
//! for apply and destroy, the critical-path bound (`bound.rs`) with measured / bound.
//!
//! `scripts/bench` runs it in full on the release binary; `cargo test` (and so CI) runs it in
//! quick mode on whatever profile was built, to prove it still works. It asserts only that every
//! run succeeds and never prints the API key: timing figures are reported, never asserted.
//! See BENCHMARKS.md for the method and the latest figures.

#[allow(dead_code)]
#[path = "../it/proxy/mod.rs"]
mod proxy;

#[path = "../it/support/moto_server.rs"]
mod moto_server;

mod bound;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use prefect_ecs::model::ObservedState;
use prefect_ecs::provider::{Aws, Connection, PrefectApi, Settings};
use prefect_ecs::secret::SecretValue;
use prefect_ecs::spec::CredentialKind;

use proxy::model::{self, Span, Timings};
use proxy::{Call, Config, Proxy, round_trip_depth};

const REGION: &str = "us-east-1";
const API_KEY: &str = "pnu_benchmarkCanaryNeverPrinted0123456789";

struct Mode {
    name: &'static str,
    /// Operation durations are AWS's times this (0.1: a 100 s rollout takes 10 s).
    time_scale: f64,
    latency: Duration,
    worker_counts: &'static [usize],
    dev: bool,
    baseline: bool,
    validate_runs: usize,
    plan_runs: usize,
}

const FULL: Mode = Mode {
    name: "full",
    time_scale: 0.1,
    latency: Duration::from_millis(100),
    worker_counts: &[1, 5, 10, 50],
    dev: true,
    baseline: true,
    validate_runs: 30,
    plan_runs: 9,
};

const QUICK: Mode = Mode {
    name: "quick",
    time_scale: 0.01,
    latency: Duration::from_millis(100),
    worker_counts: &[],
    dev: true,
    baseline: false,
    validate_runs: 3,
    plan_runs: 3,
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo test FILTER` hands its filter to every test target: run only when named or asked.
    let filters: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with('-') && (*i == 0 || args[i - 1] != "--workers"))
        .map(|(_, a)| a)
        .collect();
    if !filters.is_empty() && !filters.iter().any(|f| "bench".contains(f.as_str())) {
        return ExitCode::SUCCESS;
    }
    let mut mode = if args.iter().any(|a| a == "--full") {
        FULL
    } else {
        QUICK
    };
    // `--workers 1,10`: only these worker counts (and no dev stack, no baseline), for a closer look.
    if let Some(list) = args
        .iter()
        .position(|a| a == "--workers")
        .and_then(|i| args.get(i + 1))
    {
        let counts: Vec<usize> = list.split(',').filter_map(|n| n.parse().ok()).collect();
        mode.worker_counts = counts.leak();
        mode.dev = false;
        mode.baseline = false;
    }
    let mode: &'static Mode = Box::leak(Box::new(mode));
    // SAFETY: no other thread exists yet; the SDK used for the bound reads these.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    }
    match run(mode) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The proxies' configuration: the realistic AWS with the benchmark's fixed timings.
fn proxy_config(mode: &Mode) -> Config {
    let mut config = Config::realistic(0x6e6e_6368, mode.time_scale);
    config.timings = timings(mode);
    config
}

/// AWS's model with every span fixed at its midpoint: the same durations in every run, so the
/// bound is exact and runs compare.
fn timings(mode: &Mode) -> Timings {
    let mid = |s: Span| Span::fixed((s.min + s.max) / 2);
    let t = model::AWS.scaled(mode.time_scale);
    Timings {
        call: Span::fixed(mode.latency),
        nat_create: mid(t.nat_create),
        nat_delete: mid(t.nat_delete),
        namespace_operation: mid(t.namespace_operation),
        discovery_service_operation: mid(t.discovery_service_operation),
        service_rollout: mid(t.service_rollout),
        service_drain: mid(t.service_drain),
        eni_linger: mid(t.eni_linger),
        secret_name_release: mid(t.secret_name_release),
        queue_name_release: mid(t.queue_name_release),
        endpoint_create: mid(t.endpoint_create),
        endpoint_delete: mid(t.endpoint_delete),
    }
}

struct Bench {
    mode: &'static Mode,
    timings: Timings,
    moto: moto_server::Moto,
    prefect: PrefectServer,
    /// The same latency in front of the Prefect server as in front of moto, for the whole
    /// benchmark (the API URL ends up in the task definitions, so it must not change between
    /// runs): Prefect calls count in the calls and the round-trip depth like AWS calls.
    prefect_proxy: Proxy,
    /// The Prefect server's default `ecs` base job template, for the bound's plan.
    template: serde_json::Value,
    dir: tempfile::TempDir,
    rows: Vec<Row>,
}

struct Row {
    scenario: String,
    wall: Duration,
    /// The tool's own CPU time (user + system).
    cpu: Duration,
    calls: Vec<Call>,
    bound: Option<bound::Bound>,
}

fn run(mode: &'static Mode) -> Result<(), String> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let moto = moto_server::Moto::start(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let prefect = PrefectServer::start(&manifest)?;
    let template = prefect.ecs_template()?;
    let prefect_proxy = Proxy::start(prefect.api_url.trim_end_matches("/api"), proxy_config(mode));
    let mut bench = Bench {
        mode,
        timings: timings(mode),
        moto,
        prefect,
        prefect_proxy,
        template,
        dir: tempfile::tempdir().map_err(|e| e.to_string())?,
        rows: Vec::new(),
    };
    println!(
        "prefect-ecs benchmark, {} mode: binary {}, {} ms per call, AWS durations x{}",
        mode.name,
        env!("CARGO_BIN_EXE_prefect-ecs"),
        mode.latency.as_millis(),
        mode.time_scale
    );
    bench.validate("stacks/dev.toml", &manifest.join("stacks/dev.toml"))?;
    // Issue 16: validation stays linear in the spec; the goal is < 100 ms in release.
    let many = bench.workers_spec(2000)?;
    bench.validate("a 2,000-worker spec", &many)?;

    if mode.dev {
        bench.lifecycle("dev", &manifest.join("stacks/dev.toml"), &[])?;
    }
    for &n in mode.worker_counts {
        let spec = bench.workers_spec(n)?;
        bench.lifecycle(&format!("{n} worker(s)"), &spec, &[])?;
    }
    if mode.baseline {
        // Ten draining services hold all ten default slots: the same stack with room to spare.
        let spec = bench.workers_spec(10)?;
        bench.lifecycle(
            "10 workers, --parallelism 20",
            &spec,
            &["--parallelism", "20"],
        )?;
        let spec = bench.workers_spec(1)?;
        bench.lifecycle("1 worker, --parallelism 1", &spec, &["--parallelism", "1"])?;
    }
    bench.report();
    Ok(())
}

impl Bench {
    fn command(&self, args: &[&str], endpoint: &str) -> Command {
        let mut cmd = moto_server::cli(self.dir.path(), endpoint);
        cmd.args(args)
            .env("PREFECT_API_KEY", API_KEY)
            .env("PREFECT_API_URL", self.prefect_url())
            .env("NO_COLOR", "1")
            .env("PREFECT_ECS_TIMEOUT", "5m")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs the binary to the end; its wall time and CPU time (user + system), or an error
    /// with its output.
    fn exec(&self, args: &[&str], endpoint: &str) -> Result<(Duration, Duration), String> {
        let cpu_before = children_cpu();
        let start = Instant::now();
        let out = self
            .command(args, endpoint)
            .output()
            .map_err(|e| format!("cannot run prefect-ecs: {e}"))?;
        let wall = start.elapsed();
        let cpu = children_cpu().saturating_sub(cpu_before);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stdout.contains(API_KEY) || stderr.contains(API_KEY) {
            return Err(format!(
                "`prefect-ecs {}` printed the API key",
                args.join(" ")
            ));
        }
        if !out.status.success() {
            return Err(format!(
                "`prefect-ecs {}` failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
                args.join(" "),
                out.status
            ));
        }
        Ok((wall, cpu))
    }

    fn proxy(&self) -> Proxy {
        Proxy::start(&self.moto.endpoint, proxy_config(self.mode))
    }

    /// `PREFECT_API_URL` of every run: the Prefect server behind its proxy.
    fn prefect_url(&self) -> String {
        format!("{}/api", self.prefect_proxy.endpoint())
    }

    /// One measured run through `aws` (a fresh proxy) and the Prefect proxy: wall time, CPU
    /// time, and every call it made to either, in the order they started.
    fn measure(
        &self,
        args: &[&str],
        aws: &Proxy,
    ) -> Result<(Duration, Duration, Vec<Call>), String> {
        self.prefect_proxy.reset_log();
        let (wall, cpu) = self.exec(args, aws.endpoint())?;
        let mut calls = aws.calls();
        calls.extend(self.prefect_proxy.calls());
        calls.sort_by_key(|c| c.start);
        Ok((wall, cpu, calls))
    }

    /// Wipes moto (`POST /moto-api/reset`): every lifecycle starts from the same empty account,
    /// not one holding the deleted NATs, inactive task definitions and the like of the last.
    fn reset(&self) -> Result<(), String> {
        let addr = self.moto.endpoint.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
        write!(
            stream,
            "POST /moto-api/reset HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .map_err(|e| e.to_string())?;
        if !answer.starts_with("HTTP/1.1 200") {
            return Err(format!("moto did not reset: {answer}"));
        }
        Ok(())
    }

    fn warm_up(&self) -> Result<(), String> {
        let spec = self.workers_spec(1)?;
        let spec = spec.to_str().expect("utf-8 path");
        let p = self.proxy();
        self.exec(&["plan", spec], p.endpoint())?;
        // Takes the lock, which makes the lock group; nothing to apply for an empty stack.
        self.exec(&["destroy", "--auto-approve", spec], p.endpoint())?;
        Ok(())
    }

    /// `validate`: the whole process, wall time and peak RSS, median of several runs.
    fn validate(&mut self, label: &str, spec: &Path) -> Result<(), String> {
        let spec = spec.to_str().expect("utf-8 path");
        let mut walls = Vec::new();
        let mut rss = Vec::new();
        for _ in 0..self.mode.validate_runs {
            let (wall, max_rss_kb) = self.exec_with_rusage(&["validate", spec])?;
            walls.push(wall);
            rss.push(max_rss_kb);
        }
        walls.sort();
        rss.sort();
        println!(
            "validate {label}: median {:.1} ms (min {:.1} ms), peak RSS median {:.1} MB (max {:.1} MB), {} runs",
            ms(walls[walls.len() / 2]),
            ms(walls[0]),
            rss[rss.len() / 2] as f64 / 1024.0,
            rss[rss.len() - 1] as f64 / 1024.0,
            walls.len()
        );
        Ok(())
    }

    /// Wall time and peak RSS (KiB) of one run, read from the kernel by `wait4`.
    fn exec_with_rusage(&self, args: &[&str]) -> Result<(Duration, i64), String> {
        let start = Instant::now();
        let mut child = self
            .command(args, &self.moto.endpoint)
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run prefect-ecs: {e}"))?;
        let pid = child.id() as libc::pid_t;
        let mut status = 0;
        // SAFETY: an all-zero rusage is valid; wait4 reaps our own child, once.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        let wall = start.elapsed();
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        if reaped != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
            return Err(format!("`prefect-ecs {}` failed: {stderr}", args.join(" ")));
        }
        Ok((wall, usage.ru_maxrss))
    }

    /// A spec shaped like stacks/dev.toml with `n` workers, under its own stack name and CIDR.
    fn workers_spec(&self, n: usize) -> Result<PathBuf, String> {
        use std::sync::atomic::{AtomicU8, Ordering};
        static NEXT: AtomicU8 = AtomicU8::new(1);
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut toml = format!(
            "[stack]\nname = \"bench{k}\"\nregion = \"{REGION}\"\n\n\
             [prefect]\napi_url = \"${{PREFECT_API_URL}}\"\napi_key_env = \"PREFECT_API_KEY\"\n\n\
             [network]\ncidr = \"10.{}.0.0/16\"\naz_count = 3\nnat = \"single\"\n\n\
             [logs]\nretention_days = 30\n",
            100 + k
        );
        for w in 1..=n {
            toml += &format!(
                "\n[[worker]]\nname = \"bench{k}-worker-{w}\"\nwork_pool = \"bench{k}-pool-{w}\"\n\
                 image = \"prefecthq/prefect:3-latest\"\ncpu = 512\nmemory = 1024\n"
            );
        }
        let path = self.dir.path().join(format!("bench{k}.toml"));
        std::fs::write(&path, toml).map_err(|e| e.to_string())?;
        Ok(path)
    }

    /// Apply from empty, no-op plan (the median of several runs), destroy: each measured.
    fn lifecycle(&mut self, label: &str, spec: &Path, flags: &[&str]) -> Result<(), String> {
        self.reset()?;
        // moto loads EC2 lazily and the lock group is made by the first run ever: neither is
        // part of a scenario.
        self.warm_up()?;
        let path = spec.to_str().expect("utf-8 path");
        let run_args = |verb: &'static str| -> Vec<&str> {
            [verb, "--auto-approve"]
                .into_iter()
                .chain(flags.iter().copied())
                .chain([path])
                .collect()
        };
        let spec_model = load(spec, &self.prefect_url())?;
        let t = self.timings;

        let empty = ObservedState::default();
        let graph = prefect_ecs::graph::build(
            &spec_model,
            REGION,
            Some(SecretValue::new(API_KEY.into())),
            Some(&self.template),
        )
        .map_err(|e| e.to_string())?;
        // Apply is done when the workers are online: play their heartbeats (moto runs no task).
        for w in &spec_model.workers {
            self.prefect.keep_online(&w.work_pool, &w.name);
        }
        let plan = prefect_ecs::plan::compute(&spec_model.name, Some(&graph), &empty)
            .map_err(|e| e.to_string())?;
        // Lock; discovery of an empty stack with the pool template, in one wave; the pools
        // made before any AWS resource, one write at a time (a SQLite Prefect server takes one
        // writer and answers 503 to the others); after the rollouts, one look at the pools'
        // workers (the harness already beats for them); unlock.
        let pools = plan
            .changes
            .iter()
            .filter(|c| c.address.kind == prefect_ecs::model::Kind::WorkPool)
            .count() as u32;
        // One more before the lock: who we are (STS GetCallerIdentity, issue 15 item 7).
        let apply_bound = bound::critical_path(&plan, &t, true, 5 + pools);
        let (wall, cpu, calls) = self.measure(&run_args("apply"), &self.proxy())?;
        self.rows.push(Row {
            scenario: format!("apply from empty, {label}"),
            wall,
            cpu,
            calls,
            bound: Some(apply_bound),
        });

        if flags.is_empty() {
            let mut plans = Vec::new();
            for _ in 0..self.mode.plan_runs {
                plans.push(self.measure(&["plan", path], &self.proxy())?);
            }
            plans.sort_by_key(|(w, _, _)| *w);
            let (wall, cpu, calls) = plans.swap_remove(plans.len() / 2);
            self.rows.push(Row {
                scenario: format!("no-op plan, {label}"),
                wall,
                cpu,
                calls,
                bound: None,
            });
        }

        let observed = self.discover(&spec_model)?;
        let plan = prefect_ecs::plan::destroy(&spec_model.name, &graph, &observed)
            .map_err(|e| e.to_string())?;
        // Identity, lock, discovery, unlock. Discovering a whole stack takes three waves of reads that
        // depend on each other: a Cloud Map namespace's id, then its services (AWS filters them
        // by that id), then each service's details and tags (by the id and ARN just listed).
        let destroy_bound = bound::critical_path(&plan, &t, true, 6);
        let (wall, cpu, calls) = self.measure(&run_args("destroy"), &self.proxy())?;
        self.rows.push(Row {
            scenario: format!("destroy, {label}"),
            wall,
            cpu,
            calls,
            bound: Some(destroy_bound),
        });
        Ok(())
    }

    /// What the stack holds now, read straight from moto (not through the proxy, not logged).
    fn discover(&self, spec: &prefect_ecs::spec::Spec) -> Result<ObservedState, String> {
        let conn = Connection {
            region: Some(REGION.into()),
            profile: None,
            endpoint_url: Some(self.moto.endpoint.clone()),
        };
        let settings = Settings {
            stack: spec.name.clone(),
            wait: false,
            recovery_window_days: None,
            deadline: Duration::from_secs(60),
            log_group: None,
            pools: Default::default(),
            redact: None,
        };
        let prefect = PrefectApi::new(
            &self.prefect.api_url,
            Some((CredentialKind::ApiKey, SecretValue::new(API_KEY.into()))),
            false,
        )
        .map_err(|e| e.to_string())?;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(async {
                let mut aws = Aws::connect(&conn, REGION, settings).await;
                aws.prefect = Some(prefect);
                aws.discover(spec).await.map_err(|e| e.to_string())
            })
    }

    fn report(&self) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "\n| scenario | wall | CPU | API calls | round-trip depth | critical-path bound | measured / bound |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        for r in &self.rows {
            let (b, ratio) = match &r.bound {
                Some(b) => (
                    format!("{:.2} s", b.total.as_secs_f64()),
                    format!("{:.3}", r.wall.as_secs_f64() / b.total.as_secs_f64()),
                ),
                None => ("–".into(), "–".into()),
            };
            let _ = writeln!(
                out,
                "| {} | {:.3} s | {:.0} ms | {} | {} | {b} | {ratio} |",
                r.scenario,
                r.wall.as_secs_f64(),
                ms(r.cpu),
                r.calls.len(),
                round_trip_depth(&r.calls)
            );
        }
        // The no-op plan's growth with the stack: each against the 1-worker stack's.
        let plan_of = |label: &str| {
            self.rows
                .iter()
                .find(|r| r.scenario == format!("no-op plan, {label}"))
                .map(|r| r.wall.as_secs_f64())
        };
        if let Some(one) = plan_of("1 worker(s)") {
            for &n in self.mode.worker_counts.iter().filter(|&&n| n > 1) {
                if let Some(wall) = plan_of(&format!("{n} worker(s)")) {
                    let _ = writeln!(
                        out,
                        "no-op plan, {n} workers vs 1 worker: {:.2}x ({wall:.3} s / {one:.3} s)",
                        wall / one
                    );
                }
            }
        }
        // BENCH_CALLS=DIR: every scenario's calls as a timeline (TSV), for a closer look.
        if let Some(dir) = std::env::var_os("BENCH_CALLS") {
            for (i, r) in self.rows.iter().enumerate() {
                let Some(t0) = r.calls.first().map(|c| c.start) else {
                    continue;
                };
                let lines: String = r
                    .calls
                    .iter()
                    .map(|c| {
                        format!(
                            "{:.3}\t{:.3}\t{}:{}\t{:?}\n",
                            (c.start - t0).as_secs_f64(),
                            (c.end - t0).as_secs_f64(),
                            c.service,
                            c.operation,
                            c.status
                        )
                    })
                    .collect();
                let path = Path::new(&dir).join(format!("{i:02}.tsv"));
                let _ = std::fs::write(path, format!("# {}\n{lines}", r.scenario));
            }
        }
        for r in &self.rows {
            let _ = writeln!(out, "\n{}: calls by operation", r.scenario);
            let mut by_op: BTreeMap<String, usize> = BTreeMap::new();
            for c in &r.calls {
                *by_op
                    .entry(format!("{}:{}", c.service, c.operation))
                    .or_default() += 1;
            }
            let line: Vec<String> = by_op.iter().map(|(op, n)| format!("{op} {n}")).collect();
            let _ = writeln!(out, "  {}", line.join(", "));
            // Polls of one wait in a row read as one link: `ecs:DescribeServices ×38`.
            let mut chain: Vec<(String, usize)> = Vec::new();
            for c in deepest_chain(&r.calls) {
                let op = format!("{}:{}", c.service, c.operation);
                match chain.last_mut() {
                    Some((last, n)) if *last == op => *n += 1,
                    _ => chain.push((op, 1)),
                }
            }
            let chain: Vec<String> = chain
                .into_iter()
                .map(|(op, n)| if n == 1 { op } else { format!("{op} ×{n}") })
                .collect();
            let _ = writeln!(out, "  deepest chain of calls: {}", chain.join(" → "));
            if let Some(b) = &r.bound {
                let path: Vec<String> = b
                    .path
                    .iter()
                    .map(|(a, c)| {
                        if c.wait.is_zero() {
                            format!("{a} ({} rt)", c.round_trips)
                        } else {
                            format!("{a} ({} rt + {:.2} s)", c.round_trips, c.wait.as_secs_f64())
                        }
                    })
                    .collect();
                let _ = writeln!(out, "  critical path: {}", path.join(" → "));
            }
        }
    }
}

fn load(spec: &Path, api_url: &str) -> Result<prefect_ecs::spec::Spec, String> {
    let env = |k: &str| match k {
        "PREFECT_API_KEY" => Some(API_KEY.to_owned()),
        "PREFECT_API_URL" => Some(api_url.to_owned()),
        _ => None,
    };
    prefect_ecs::spec::load(spec, &env, Some(REGION)).map_err(|e| e.to_string())
}

/// One longest chain of calls each starting after the previous ended (what
/// `round_trip_depth` counts), to show which reads wait on which.
fn deepest_chain(calls: &[Call]) -> Vec<&Call> {
    let mut by_end: Vec<&Call> = calls.iter().collect();
    by_end.sort_by_key(|c| c.end);
    let mut best: Vec<(usize, Option<usize>)> = Vec::with_capacity(by_end.len());
    for (i, call) in by_end.iter().enumerate() {
        let before = (0..i)
            .filter(|&j| by_end[j].end <= call.start)
            .max_by_key(|&j| best[j].0);
        best.push((before.map_or(0, |j| best[j].0) + 1, before));
    }
    let mut at = (0..by_end.len()).max_by_key(|&i| best[i].0);
    let mut chain = Vec::new();
    while let Some(i) = at {
        chain.push(by_end[i]);
        at = best[i].1;
    }
    chain.reverse();
    chain
}

/// User + system CPU time of every child waited for so far (`getrusage(RUSAGE_CHILDREN)`).
fn children_cpu() -> Duration {
    // SAFETY: an all-zero rusage is valid and getrusage only writes it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The Prefect server the work pools live in: started by `scripts/prefect-up`, stopped on drop.
struct PrefectServer {
    api_url: String,
    pid: u32,
    online: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl PrefectServer {
    fn start(manifest: &Path) -> Result<PrefectServer, String> {
        let out = Command::new(manifest.join("scripts/prefect-up"))
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run scripts/prefect-up: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut parts = text.split_whitespace();
        let (Some(port), Some(pid)) = (parts.next(), parts.next()) else {
            return Err(format!("scripts/prefect-up printed {text:?}"));
        };
        let server = PrefectServer {
            api_url: format!("http://127.0.0.1:{port}/api"),
            pid: pid.parse().map_err(|e| format!("pid {pid}: {e}"))?,
            online: Default::default(),
        };
        let (url, online) = (server.api_url.clone(), server.online.clone());
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::new();
            loop {
                let workers = online.lock().expect("workers").clone();
                for (pool, worker) in workers {
                    let _ = http
                        .post(format!("{url}/work_pools/{pool}/workers/heartbeat"))
                        .json(&serde_json::json!({"name": worker, "heartbeat_interval_seconds": 5}))
                        .send();
                }
                // As often as the gate needs, no more: the server's SQLite has one writer.
                std::thread::sleep(Duration::from_secs(2));
            }
        });
        Ok(server)
    }

    fn ecs_template(&self) -> Result<serde_json::Value, String> {
        let body: serde_json::Value = reqwest::blocking::get(format!(
            "{}/collections/views/aggregate-worker-metadata",
            self.api_url
        ))
        .and_then(|r| r.json())
        .map_err(|e| e.to_string())?;
        Ok(body["prefect-aws"]["ecs"]["default_base_job_configuration"].clone())
    }

    fn keep_online(&self, pool: &str, worker: &str) {
        self.online
            .lock()
            .expect("workers")
            .push((pool.to_owned(), worker.to_owned()));
    }
}

impl Drop for PrefectServer {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
    }
}
