//! prefect-ecs against an AWS that behaves like AWS: the realism proxy in front of moto adds
//! latency, pending states, dependency errors and faults. Runs are seeded; every seed is printed
//! (`PREFECT_ECS_SEED=<n>` replays one base seed).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::proxy::model::Span;
use crate::proxy::{Config, Fault, Injected, Proxy};
use crate::support::aws::{Aws, Ec2Stack, discovery_services_named, leftovers, namespaces_named};
use crate::support::{TestStack, moto, plan, signal, watch_stdout};

/// Scale of the AWS latency model: a 100 s service rollout takes 0.5 s.
const TIME_SCALE: f64 = 0.005;
const RUNS: u64 = 20;
/// Runs at once: each is mostly waiting on the proxy's clock.
const AT_ONCE: usize = 4;

fn base_seed() -> u64 {
    std::env::var("PREFECT_ECS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                % 1_000_000
        })
}

/// A small deterministic generator: the kill points of a run follow from its seed.
fn draw(seed: u64, salt: u64, below: u64) -> u64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_add(0xD1B5_4A32_D192_ED03);
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    x % below
}

/// Every address exists at most once, in every service (the EC2 loader panics on a duplicate).
pub(crate) async fn assert_no_duplicates(aws: &Aws, stack: &TestStack) {
    Ec2Stack::load(aws, &stack.name).await;
    assert!(
        namespaces_named(aws, &stack.namespace()).await.len() <= 1,
        "two namespaces for {}",
        stack.name
    );
    for w in &stack.workers {
        assert!(
            discovery_services_named(aws, &w.name).await.len() <= 1,
            "two Cloud Map services for {}",
            w.name
        );
    }
}

/// Run `body(seed)` for `RUNS` seeds, `AT_ONCE` at a time, and report every failing seed.
fn for_seeds(label: &str, body: impl Fn(u64) + Sync) {
    let base = base_seed();
    eprintln!("{label}: base seed {base} (replay with PREFECT_ECS_SEED={base})");
    let seeds: Vec<u64> = (0..RUNS).map(|i| base + i).collect();
    let body = &body;
    let failed: Vec<u64> = std::thread::scope(|s| {
        seeds
            .chunks(AT_ONCE)
            .flat_map(|chunk| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|&seed| (seed, s.spawn(move || body(seed))))
                    .collect();
                handles
                    .into_iter()
                    .filter_map(|(seed, h)| h.join().is_err().then_some(seed))
                    .collect::<Vec<_>>()
            })
            .collect()
    });
    assert!(
        failed.is_empty(),
        "{label}: runs failed for seeds {failed:?} (base {base})"
    );
}

pub(crate) fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Whether an AWS operation makes a resource (the ones a lost answer could make twice).
/// CreateCluster is not: AWS answers it with the ACTIVE cluster of that name when there is one.
fn is_create(operation: &str) -> bool {
    // CreateCluster and CreateQueue answer the existing resource of that name (SQS: when its
    // attributes match): sent twice, they make one.
    (operation.starts_with("Create")
        && !["CreateTags", "CreateCluster", "CreateQueue"].contains(&operation))
        || ["AllocateAddress", "RegisterTaskDefinition"].contains(&operation)
}

/// Creates moto carried out, per operation and address: more than one is a duplicate a lost
/// answer made (issue 10, defect 3), even when a later step deleted it again.
fn creates_per_address(calls: &[crate::proxy::Call]) -> BTreeMap<(String, String), usize> {
    let mut made = BTreeMap::new();
    for c in calls {
        let done = c.moto_status.is_some_and(|s| (200..300).contains(&s))
            && c.injected != Some(Injected::Replayed);
        if let (true, true, Some(address)) = (done, is_create(&c.operation), &c.address) {
            *made
                .entry((c.operation.clone(), address.clone()))
                .or_insert(0) += 1;
        }
    }
    made
}

#[test]
fn seeded_fault_runs_converge_without_duplicates_or_leftovers() {
    let aws = block_on(Aws::new());
    let lost_creates = std::sync::atomic::AtomicUsize::new(0);
    for_seeds("fault runs", |seed| {
        let faults = [
            Fault::Throttle,
            Fault::InternalError,
            Fault::Unavailable,
            Fault::Reset,
            Fault::Lost,
        ];
        let proxy = Proxy::start(
            &moto().endpoint,
            Config::realistic(seed, TIME_SCALE).with_faults(0.2, &faults),
        );
        let stack = TestStack::new("fault");
        let env = [("AWS_ENDPOINT_URL", proxy.endpoint())];
        let spec = stack.write();
        let spec = spec.to_str().unwrap();
        eprintln!("fault run seed {seed}: stack {}", stack.name);
        stack
            .run_bare(&["apply", "--auto-approve", spec], &env)
            .assert_ok();
        block_on(assert_no_duplicates(&aws, &stack));
        let out = stack.run_bare(&["plan", spec], &env).assert_ok();
        assert!(plan::is_converged(&out.stdout), "seed {seed}: {out}");
        stack
            .run_bare(&["destroy", "--auto-approve", spec], &env)
            .assert_ok();
        assert_eq!(
            block_on(leftovers(&aws, &stack)),
            Vec::<String>::new(),
            "seed {seed}"
        );
        let calls = proxy.calls();
        let twice: Vec<_> = creates_per_address(&calls)
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .collect();
        assert_eq!(twice, vec![], "seed {seed}: resources created twice");
        let lost = calls
            .iter()
            .filter(|c| c.injected == Some(Injected::Fault(Fault::Lost)) && is_create(&c.operation))
            .count();
        lost_creates.fetch_add(lost, std::sync::atomic::Ordering::SeqCst);
        let injected = calls.iter().filter(|c| c.injected.is_some()).count();
        eprintln!(
            "fault run seed {seed}: converged through {injected} injected faults and refusals, {lost} lost answers to creates"
        );
    });
    let lost = lost_creates.load(std::sync::atomic::Ordering::SeqCst);
    eprintln!("fault runs: {lost} creates AWS carried out whose answer was lost");
    assert!(
        lost > 0,
        "no create lost its answer: the runs proved nothing about idempotency"
    );
}

/// Kill the run at a random point (SIGKILL: no cleanup at all), then run again: the next run
/// must converge. The killed run's lock is stale by design and broken with force-unlock.
#[test]
fn runs_killed_at_random_points_are_finished_by_the_next_run() {
    let aws = block_on(Aws::new());
    for_seeds("crash runs", |seed| {
        let proxy = Proxy::start(&moto().endpoint, Config::realistic(seed, TIME_SCALE));
        let stack = TestStack::new("crash");
        let env = [("AWS_ENDPOINT_URL", proxy.endpoint())];
        let spec = stack.write();
        let spec = spec.to_str().unwrap();
        for (verb, salt) in [("apply", 1), ("destroy", 2)] {
            let args = [verb, "--auto-approve", spec];
            let kill_after = Duration::from_millis(draw(seed, salt, 4000));
            eprintln!(
                "crash run seed {seed}: killing {verb} of {} after {kill_after:?}",
                stack.name
            );
            let mut child = stack.spawn(&args, &env);
            std::thread::sleep(kill_after);
            let _ = child.kill();
            stack.wait(&args, child);
            proxy.wait_idle();
            stack
                .run_bare(&["force-unlock", "--force", &stack.name], &env)
                .assert_ok();
            stack.run_bare(&args, &env).assert_ok();
            block_on(assert_no_duplicates(&aws, &stack));
            if verb == "apply" {
                let out = stack.run_bare(&["plan", spec], &env).assert_ok();
                assert!(plan::is_converged(&out.stdout), "seed {seed}: {out}");
            }
        }
        assert_eq!(
            block_on(leftovers(&aws, &stack)),
            Vec::<String>::new(),
            "seed {seed}"
        );
    });
}

#[test]
fn of_two_concurrent_applies_exactly_one_runs() {
    let aws = block_on(Aws::new());
    let proxy = Proxy::start(&moto().endpoint, Config::realistic(7, TIME_SCALE));
    let stack = TestStack::new("twice");
    let env = [("AWS_ENDPOINT_URL", proxy.endpoint())];
    let spec = stack.write();
    let args = ["apply", "--auto-approve", spec.to_str().unwrap()];
    let first = stack.spawn(&args, &env);
    let second = stack.spawn(&args, &env);
    let outs = [stack.wait(&args, first), stack.wait(&args, second)];
    let (won, lost): (Vec<_>, Vec<_>) = outs.iter().partition(|o| o.code == 0);
    assert_eq!((won.len(), lost.len()), (1, 1), "{outs:?}");
    assert!(
        lost[0].stderr.contains("is locked by") && lost[0].stderr.contains("(pid "),
        "{}",
        lost[0]
    );
    block_on(assert_no_duplicates(&aws, &stack));
    let out = stack.run_bare(&["plan", args[2]], &env).assert_ok();
    assert!(plan::is_converged(&out.stdout), "{out}");
    stack
        .run_bare(&["destroy", "--auto-approve", args[2]], &env)
        .assert_ok();
    assert_eq!(block_on(leftovers(&aws, &stack)), Vec::<String>::new());
}

/// Task ENIs linger after a service is deleted and the service drains: destroy waits them out
/// within its deadline and says what it waited for.
#[test]
fn destroy_waits_out_draining_services_and_lingering_enis() {
    let aws = block_on(Aws::new());
    let mut config = Config::realistic(11, TIME_SCALE);
    // ENIs that outlive the drain: AWS's own DependencyViolation on the subnets and the group.
    config.timings.service_drain = Span::fixed(Duration::from_millis(300));
    config.timings.eni_linger = Span::fixed(Duration::from_millis(2500));
    let proxy = Proxy::start(&moto().endpoint, config);
    let stack = TestStack::new("linger");
    let env = [("AWS_ENDPOINT_URL", proxy.endpoint())];
    let spec = stack.write();
    let spec = spec.to_str().unwrap();
    stack
        .run_bare(&["apply", "--auto-approve", spec], &env)
        .assert_ok();
    let started = Instant::now();
    let out = stack
        .run_bare(&["destroy", "--auto-approve", spec], &env)
        .assert_ok();
    let worker = &stack.workers[0].name;
    // The waits show in the progress, next to the resource that waits.
    let drain = format!("ecs_service.{worker}: waiting for ECS service {worker} to drain");
    assert!(
        out.stdout.contains(&drain),
        "destroy did not report waiting for the drain:\n{out}"
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains(": delete subnet.") && l.contains("DependencyViolation")),
        "destroy did not report the lingering ENIs:\n{out}"
    );
    let refused = proxy
        .calls()
        .iter()
        .filter(|c| matches!(c.injected, Some(Injected::Refused(_))))
        .count();
    assert!(
        refused > 0,
        "the proxy refused nothing: the test proves nothing"
    );
    assert_eq!(block_on(leftovers(&aws, &stack)), Vec::<String>::new());
    eprintln!(
        "destroy waited out {refused} refusals in {:.1?}",
        started.elapsed()
    );
}

/// Run `args` and send one SIGINT when its progress first shows `text`; its whole output.
fn apply_interrupted_at(
    stack: &TestStack,
    args: &[&str],
    env: &[(&str, &str)],
    text: &'static str,
) -> crate::support::Output {
    let mut child = stack.spawn(args, env);
    let (seen, reader) = watch_stdout(&mut child, text);
    seen.recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("the run never printed {text:?}"));
    signal(&child, libc::SIGINT);
    let mut out = stack.wait(args, child);
    out.stdout = reader.join().unwrap();
    out
}

/// After an interrupted run: `args` (the apply) again finishes the job without duplicates,
/// and destroy leaves nothing.
fn converge_then_destroy(aws: &Aws, stack: &TestStack, args: &[&str], env: &[(&str, &str)]) {
    stack.run_bare(args, env).assert_ok();
    block_on(assert_no_duplicates(aws, stack));
    let spec = args.last().expect("the spec is the last argument");
    stack
        .run_bare(&["destroy", "--auto-approve", spec], env)
        .assert_ok();
    assert_eq!(block_on(leftovers(aws, stack)), Vec::<String>::new());
}

/// The first Ctrl-C lets what is in flight finish, starts nothing new, lists what did not run,
/// gives the lock back and exits 1; the next apply finishes the job.
#[test]
fn an_interrupted_apply_stops_cleanly_and_the_next_one_converges() {
    let aws = block_on(Aws::new());
    let proxy = Proxy::start(&moto().endpoint, Config::realistic(5, TIME_SCALE));
    let stack = TestStack::new("sigint");
    let env = [("AWS_ENDPOINT_URL", proxy.endpoint())];
    let spec = stack.write();
    let args = ["apply", "--auto-approve", spec.to_str().unwrap()];
    // Interrupt once creates are under way: read progress until the first one starts.
    let out = apply_interrupted_at(&stack, &args, &env, "creating");
    assert!(
        !out.stdout.contains(stack.canary()),
        "the API key leaked into the progress"
    );
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr
            .contains("Interrupt received: starting nothing new"),
        "{out}"
    );
    assert!(
        out.stderr.contains("Apply interrupted") && out.stderr.contains("not started:"),
        "{out}"
    );
    // The lock was given back: no force-unlock needed.
    converge_then_destroy(&aws, &stack, &args, &env);
}

/// Issue 15, bug 3: one Ctrl-C while a NAT gateway is pending was not acknowledged and the run
/// went on until the NAT was up (or `--timeout`). Now it says at once what it finishes, ends
/// the wait (no operation is in flight), gives the lock back, and the next apply resumes.
#[test]
fn a_ctrl_c_during_a_wait_is_acknowledged_and_ends_the_wait() {
    let aws = block_on(Aws::new());
    let mut config = Config::realistic(21, TIME_SCALE);
    // Pending for ten minutes: only an abandoned wait lets this run end soon.
    config.timings.nat_create = Span::fixed(Duration::from_secs(600));
    let proxy = Proxy::start(&moto().endpoint, config);
    let stack = TestStack::new("sigwait");
    let env = [("AWS_ENDPOINT_URL", proxy.endpoint())];
    let spec = stack.write();
    let args = ["apply", "--auto-approve", spec.to_str().unwrap()];
    let out = apply_interrupted_at(&stack, &args, &env, "waiting for NAT gateway");
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains("Interrupt received: finishing")
            && out
                .stderr
                .contains("operation(s) in flight, starting nothing new"),
        "{out}"
    );
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("stopped waiting for NAT gateway"), "{out}");
    // The lock was given back; the next apply takes the NAT gateway as it finds it.
    let mut fast = Config::realistic(22, TIME_SCALE);
    fast.timings.nat_create = Span::fixed(Duration::from_millis(200));
    drop(proxy);
    let proxy = Proxy::start(&moto().endpoint, fast);
    let env = [("AWS_ENDPOINT_URL", proxy.endpoint())];
    converge_then_destroy(&aws, &stack, &args, &env);
}

/// Fields moto drops from ECS services (the circuit breaker) come back through the proxy, so
/// drift on them is seen and repaired like any other.
#[test]
fn a_circuit_breaker_turned_off_by_hand_is_drift_and_is_turned_back_on() {
    use aws_sdk_ecs::types::{DeploymentCircuitBreaker, DeploymentConfiguration};
    let aws = block_on(Aws::new());
    let proxy = Proxy::start(&moto().endpoint, Config::realistic(13, TIME_SCALE));
    let stack = TestStack::new("breaker");
    let env = [("AWS_ENDPOINT_URL", proxy.endpoint())];
    let spec = stack.write();
    let spec = spec.to_str().unwrap();
    stack
        .run_bare(&["apply", "--auto-approve", spec], &env)
        .assert_ok();

    // By hand, through the same endpoint the tool uses (the proxy remembers what ECS keeps).
    let ecs = block_on(async {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(proxy.endpoint())
            .region(aws_config::Region::new(crate::support::REGION))
            .credentials_provider(aws_sdk_ecs::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .load()
            .await;
        aws_sdk_ecs::Client::new(&config)
    });
    let off = DeploymentCircuitBreaker::builder()
        .enable(false)
        .rollback(false)
        .build();
    block_on(
        ecs.update_service()
            .cluster(stack.cluster())
            .service(&stack.workers[0].name)
            .deployment_configuration(
                DeploymentConfiguration::builder()
                    .deployment_circuit_breaker(off)
                    .build(),
            )
            .send(),
    )
    .expect("turn the circuit breaker off");

    let out = stack.run_bare(&["plan", spec], &env).assert_ok();
    let service = format!("ecs_service.{}", stack.workers[0].name);
    assert_eq!(
        plan::changes(&out.stdout).into_keys().collect::<Vec<_>>(),
        [service.as_str()],
        "{out}"
    );
    assert!(out.stdout.contains("deployment_circuit_breaker"), "{out}");
    assert!(
        out.stdout
            .contains(&format!("{service}  # changed outside prefect-ecs")),
        "{out}"
    );
    stack
        .run_bare(&["apply", "--auto-approve", spec], &env)
        .assert_ok();
    let out = stack.run_bare(&["plan", spec], &env).assert_ok();
    assert!(plan::is_converged(&out.stdout), "{out}");
    stack
        .run_bare(&["destroy", "--auto-approve", spec], &env)
        .assert_ok();
    assert_eq!(block_on(leftovers(&aws, &stack)), Vec::<String>::new());
}
