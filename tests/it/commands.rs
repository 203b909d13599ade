//! `verify`, `status` and `logs` against moto and the real Prefect server. Every run goes
//! through the harness's canary check: the API key never appears in their output.

use crate::support::aws::{Aws, put_log_lines};
use crate::support::prefect::prefect;
use crate::support::{Moto, TestStack, free_port};

#[test]
fn verify_passes_on_a_good_stack_and_names_each_failure_with_its_fix() {
    // A moto of its own: the Elastic IP check counts every address of the account, and the
    // tests sharing the other moto hold NAT addresses at any time.
    let moto = Moto::start(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")));
    let env = [("AWS_ENDPOINT_URL", moto.endpoint.as_str())];
    let mut stack = TestStack::new("verify");
    let out = stack.run(&["verify"], &env).assert_ok();
    for line in [
        "ok    AWS answers in us-east-1",
        "ok    availability zones: 3 used, all available",
        "ok    Elastic IPs for the NAT gateways: 1 needed",
        "credential accepted",
        "ok    work pool type ecs",
        "ok    image of worker",
        "ok    worker permissions in the IAM policies: ecs:RunTask and friends, iam:PassRole on exactly iam_role.execution and iam_role.flow_run",
        "0 failed.",
    ] {
        assert!(out.stdout.contains(line), "missing {line:?}\n{out}");
    }

    // Issue 11, item 6: on an applied stack the NATs' own addresses counted as "in use"
    // against the quota (moto's limit is 5): "3 needed but 3 of 5 are in use". They are
    // part of what the stack needs: a second verify passes.
    let mut applied = TestStack::new("verify-applied");
    applied.nat = "per-az";
    applied
        .run(&["apply", "--auto-approve", "--no-wait"], &env)
        .assert_ok();
    let out = applied.run(&["verify"], &env).assert_ok();
    assert!(
        out.stdout.contains(
            "ok    Elastic IPs for the NAT gateways: 3 needed (3 held by this stack already), 0 of 5 in use by others"
        ),
        "{out}"
    );
    applied
        .run(&["destroy", "--auto-approve", "--no-wait"], &env)
        .assert_ok();

    // A bad image reference and a Prefect that does not answer: one FAIL line each, exit 1.
    stack.workers[0].name = format!("{}-w1", stack.name);
    let spec = stack.spec_toml().replace(
        "image = \"prefecthq/prefect:3-python3.12\"",
        "image = \"Prefecthq/Prefect:3\"",
    );
    let dead = format!("http://127.0.0.1:{}/api", free_port());
    let spec = spec.replace(&crate::support::prefect::prefect().api_url, &dead);
    stack.extra = String::new();
    let path = stack.path("bad.toml");
    std::fs::write(&path, spec).expect("write spec");
    let out = stack
        .run_bare(&["verify", path.to_str().unwrap()], &env)
        .assert_failed();
    assert!(
        out.stdout.contains("FAIL  image of worker")
            && out.stdout.contains("is not a valid repository name"),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!("FAIL  Prefect API at {dead}"))
            && out.stdout.contains("cannot reach Prefect"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_the_service_the_heartbeat_and_the_pool() {
    let stack = TestStack::new("status");
    stack.apply().assert_ok();
    let w = &stack.workers[0];
    // The harness heartbeats as the worker every 2 s: wait until Prefect has one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while prefect().worker_status(&w.work_pool, &w.name).as_deref() != Some("ONLINE") {
        assert!(
            std::time::Instant::now() < deadline,
            "no heartbeat of {} reached Prefect in 120 s",
            w.name
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let out = stack.run(&["status"], &[]).assert_ok();
    for line in [
        format!("worker {} (work pool {})", w.name, w.work_pool),
        "  service:   1 desired, ".to_owned(),
        "  heartbeat: ONLINE, last heartbeat ".to_owned(),
        "s ago (20".to_owned(),
        "  pool:      type ecs, READY".to_owned(),
    ] {
        assert!(out.stdout.contains(&line), "missing {line:?}\n{out}");
    }
    stack.destroy().assert_ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_prints_the_workers_lines_and_only_the_named_workers() {
    let aws = Aws::new().await;
    let mut stack = TestStack::new("logs");
    let w2 = stack.add_worker();
    let w1 = stack.worker(0).to_owned();
    stack.apply().assert_ok();
    // A worker's log may hold its own key (a flow printed it): prefect-ecs masks it, and
    // the harness fails the run if it appears.
    let leaked = format!("settings: PREFECT_API_KEY={}", stack.canary());
    for (worker, lines) in [
        (&w1, vec!["hello from one", leaked.as_str()]),
        (&w2, vec!["hello from two"]),
    ] {
        let stream = format!("{worker}/worker/0123abcd");
        put_log_lines(&aws, &stack.log_group(), &stream, &lines).await;
    }
    // The flow runs the pool launches log to the same group; `logs` is the workers' log.
    put_log_lines(&aws, &stack.log_group(), "prefect/flow/99", &["a flow run"]).await;
    let out = stack.run(&["logs", "--since", "1h"], &[]).assert_ok();
    assert!(
        out.stdout.contains("hello from one") && out.stdout.contains("hello from two"),
        "{out}"
    );
    assert!(
        out.stdout.contains("settings: PREFECT_API_KEY=(sensitive)"),
        "{out}"
    );
    assert!(!out.stdout.contains("a flow run"), "{out}");
    let out = stack
        .run(&["logs", "--since", "1h", "--worker", &w2], &[])
        .assert_ok();
    assert!(
        out.stdout
            .contains(&format!("{w2}/worker/0123abcd hello from two"))
            && !out.stdout.contains("hello from one"),
        "{out}"
    );
    let out = stack
        .run(&["logs", "--worker", "nobody"], &[])
        .assert_failed();
    assert!(out.stderr.contains("no worker \"nobody\""), "{out}");
    stack.destroy().assert_ok();
}

/// Issue 15, item 6: `validate` finds a missing credential as `plan` would, offline.
#[test]
fn validate_reads_the_prefect_credential_as_plan_would() {
    let stack = TestStack::new("validate-key");
    stack.run(&["validate"], &[]).assert_ok();
    let empty = [("PREFECT_API_KEY", "")];
    let validate = stack.run(&["validate"], &empty).assert_failed();
    let plan = stack.run(&["plan"], &empty).assert_failed();
    let reason = "the Prefect API key is empty";
    assert!(validate.stderr.contains(reason), "{validate}");
    assert!(plan.stderr.contains(reason), "{plan}");
}
