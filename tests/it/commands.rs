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
        // Issue 11, item 4: the image's Prefect, as its tag names it, fits the template.
        "prefecthq/prefect:3-python3.12: Prefect 3 (its latest) with prefect-aws==0.7.12",
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

    // A Prefect that does not answer: a FAIL line, exit 1.
    stack.workers[0].name = format!("{}-w1", stack.name);
    // (An image ECS cannot pull is validate's to refuse since issue 16: tests/specs/invalid.)
    let spec = stack.spec_toml();
    let dead = format!("http://127.0.0.1:{}/api", free_port());
    let spec = spec.replace(&crate::support::prefect::prefect().api_url, &dead);
    stack.extra = String::new();
    let path = stack.path("bad.toml");
    std::fs::write(&path, spec).expect("write spec");
    let out = stack
        .run_bare(&["verify", path.to_str().unwrap()], &env)
        .assert_failed();
    assert!(
        out.stdout.contains(&format!("FAIL  Prefect API at {dead}"))
            && out.stdout.contains("cannot reach Prefect"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_the_service_the_heartbeat_and_the_pool() {
    // Through the realism proxy: moto never starts a task, so only there does the service
    // reach its desired count, as on AWS; apply waits for that and for the heartbeat.
    let proxy = crate::proxy::Proxy::start(
        &crate::support::moto().endpoint,
        crate::proxy::Config::realistic(31, 0.005),
    );
    let env = [("AWS_ENDPOINT_URL", proxy.endpoint())];
    let stack = TestStack::new("status");
    stack.run(&["apply", "--auto-approve"], &env).assert_ok();
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
    let out = stack.run(&["status"], &env).assert_ok();
    for line in [
        format!("worker {} (work pool {})", w.name, w.work_pool),
        "  service:   1 desired, ".to_owned(),
        "  heartbeat: ONLINE, last heartbeat ".to_owned(),
        "s ago (20".to_owned(),
        "  pool:      type ecs, READY".to_owned(),
    ] {
        assert!(out.stdout.contains(&line), "missing {line:?}\n{out}");
    }
    // Issue 15, item 13: healthy is exit 0 with --detailed-exitcode, a paused pool 2, and a
    // Prefect that does not answer is "unreachable" (1), not "pool not found".
    let out = stack
        .run(&["status", "--detailed-exitcode"], &env)
        .assert_ok();
    assert!(out.stdout.contains("Healthy: 1 worker(s)"), "{out}");
    prefect().patch_pool(&w.work_pool, serde_json::json!({"is_paused": true}));
    let out = stack
        .run(&["status", "--detailed-exitcode"], &env)
        .assert_code(2);
    assert!(
        out.stdout
            .contains(&format!("! work pool {}: PAUSED", w.work_pool))
            && out.stdout.contains("Not healthy: 1 problem(s)."),
        "{out}"
    );
    // Without the flag the same report exits 0.
    stack.run(&["status"], &env).assert_ok();
    prefect().patch_pool(&w.work_pool, serde_json::json!({"is_paused": false}));
    let mut away = TestStack::new("status");
    away.name = stack.name.clone();
    away.cidr = stack.cidr.clone();
    away.workers = stack.workers.clone();
    // A port nothing listens on.
    away.prefect_table = Some("[prefect]\napi_url = \"http://127.0.0.1:9/api\"\n".into());
    let out = away
        .run(&["status", "--detailed-exitcode"], &env)
        .assert_code(1);
    assert!(
        out.stdout
            .contains("heartbeat: unknown: Prefect unreachable")
            && !out.stdout.contains("not found in Prefect")
            && out.stdout.contains("Health unknown"),
        "{out}"
    );
    stack
        .run(&["destroy", "--auto-approve", "--no-wait"], &env)
        .assert_ok();
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

/// Issue 15, item 12: each command's help lists the flags that act on it, and only those.
#[test]
fn help_lists_only_the_flags_that_act_on_the_command() {
    let help = |args: &[&str]| {
        let out = crate::support::moto_server::cli(std::path::Path::new("."), "http://127.0.0.1:9")
            .args(args)
            .arg("--help")
            .output()
            .expect("run prefect-ecs");
        assert!(out.status.success(), "{args:?} --help failed");
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let tuning = ["--parallelism", "--timeout", "--lock-lease"];
    let aws = ["--endpoint-url", "--profile"];
    for command in ["validate", "render", "graph", "show", "completions"] {
        let text = help(&[command]);
        for flag in tuning.iter().chain(&aws).chain(&["--worker-timeout"]) {
            assert!(
                !text.contains(flag),
                "`{command} --help` offers {flag}:\n{text}"
            );
        }
    }
    for command in ["plan", "output", "verify", "status", "logs", "force-unlock"] {
        let text = help(&[command]);
        assert!(
            text.contains("--endpoint-url"),
            "`{command} --help`:\n{text}"
        );
        for flag in tuning {
            assert!(
                !text.contains(flag),
                "`{command} --help` offers {flag}:\n{text}"
            );
        }
    }
    let apply = help(&["apply"]);
    let destroy = help(&["destroy"]);
    for flag in tuning.iter().chain(&aws) {
        assert!(apply.contains(flag) && destroy.contains(flag), "{flag}");
    }
    assert!(apply.contains("--worker-timeout"), "{apply}");
    for flag in ["--worker-timeout", "--no-wait"] {
        assert!(
            !destroy.contains(flag),
            "`destroy --help` offers {flag}:\n{destroy}"
        );
    }
    // The spec argument says what it is; AWS_ENDPOINT_URL (set by the harness) does not make
    // --endpoint-url look required in the usage line.
    let plan = help(&["plan"]);
    assert!(plan.contains("The stack spec (TOML)"), "{plan}");
    let usage = plan
        .lines()
        .find(|l| l.starts_with("Usage:"))
        .expect("usage");
    assert!(!usage.contains("--endpoint-url"), "{usage}");
}

/// Issue 15, item 7: a first run that cannot talk to AWS is told why in one sentence, at once:
/// no Debug dump, no library log line, whatever is wrong.
#[test]
fn a_first_run_without_aws_is_told_why_in_one_sentence() {
    let stack = TestStack::new("first-run");
    let spec = stack.write();
    let run = |args: &[&str], change: &dyn Fn(&mut std::process::Command)| {
        let mut cmd = crate::support::moto_server::cli(std::path::Path::new("/nonexistent"), "");
        cmd.env_remove("AWS_ENDPOINT_URL")
            .env("PREFECT_API_KEY", stack.canary())
            .env("PREFECT_ACCOUNT_ID", crate::support::ACCOUNT_ID)
            .env("PREFECT_WORKSPACE_ID", crate::support::WORKSPACE_ID)
            .args(args)
            .arg(&spec);
        change(&mut cmd);
        let out = cmd.output().expect("run prefect-ecs");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        for noise in ["DispatchFailure", "WARN", "\u{1b}[", "ConnectorError"] {
            assert!(
                !stderr.contains(noise),
                "{args:?} printed {noise:?}:\n{stderr}"
            );
        }
        stderr
    };
    let no_keys = |c: &mut std::process::Command| {
        c.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY");
    };
    let err = run(&["plan"], &no_keys);
    assert!(err.contains("no AWS credentials found"), "{err}");
    // A profile named on the command line wins over credentials in the environment.
    let err = run(&["plan", "--profile", "nope"], &|_| {});
    assert!(
        err.contains(r#"AWS profile "nope" is not defined"#),
        "{err}"
    );
    let closed = format!("http://127.0.0.1:{}", free_port());
    let err = run(
        &["apply", "--auto-approve", "--endpoint-url", &closed],
        &|_| {},
    );
    assert!(
        err.contains(&format!("cannot reach AWS at {closed} (us-east-1)")),
        "{err}"
    );
}

/// Issue 15, item 7: the account the run acts in is in the plan's header.
#[test]
fn the_plan_names_the_account_and_region() {
    let stack = TestStack::new("account");
    let out = stack.run(&["plan"], &[]).assert_ok();
    let header = format!(
        "prefect-ecs will perform these actions on stack \"{}\" in account 123456789012, \
         us-east-1, Prefect workspace {}:",
        stack.name,
        crate::support::prefect::prefect().api_url
    );
    assert!(out.stdout.contains(&header), "{out}");
}
