//! The per-stack lock: a run holding it makes apply and destroy fail at once naming the holder;
//! plan does not take it; force-unlock breaks a stale one.

use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

use crate::proxy::{Config, Proxy};
use crate::realism::block_on;
use crate::support::aws::{Aws, Ec2Stack, leftovers};
use crate::support::{TestStack, moto, plan, signal, watch_stdout};

/// Scale of the AWS latency model, as in the realism tests.
const TIME_SCALE: f64 = 0.005;

const LOCK_GROUP: &str = "/prefect-ecs/locks";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Take the stack's lock the way another prefect-ecs run would: create its stream and write
/// `holder` (its holder event) into it.
async fn take_lock(aws: &Aws, stack: &str, holder: serde_json::Value) {
    let _ = aws
        .logs
        .create_log_group()
        .log_group_name(LOCK_GROUP)
        .send()
        .await;
    aws.logs
        .create_log_stream()
        .log_group_name(LOCK_GROUP)
        .log_stream_name(stack)
        .send()
        .await
        .expect("take the lock");
    aws.logs
        .put_log_events()
        .log_group_name(LOCK_GROUP)
        .log_stream_name(stack)
        .log_events(
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(now_ms())
                .message(holder.to_string())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("write the holder");
}

/// A lock held for 90 s by `holder`, renewed just now.
async fn hold_lock(aws: &Aws, stack: &str, holder: &str) {
    let message = serde_json::json!({
        "holder": holder, "operation": "apply", "started_ms": now_ms() - 90_000,
    });
    take_lock(aws, stack, message).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_lock_stops_apply_and_destroy_until_force_unlock() {
    let aws = Aws::new().await;
    let stack = TestStack::new("lock");
    hold_lock(&aws, &stack.name, "ci@runner-7 (pid 4242)").await;

    let out = stack.apply().assert_failed();
    assert!(
        out.stderr
            .contains("is locked by ci@runner-7 (pid 4242) (apply, for 1m"),
        "{out}"
    );
    assert!(
        out.stderr
            .contains(&format!("prefect-ecs force-unlock {}", stack.name)),
        "{out}"
    );
    assert!(
        Ec2Stack::load(&aws, &stack.name).await.vpcs.is_empty(),
        "apply created resources without the lock"
    );
    stack.destroy().assert_failed();

    // plan reads only: it does not need the lock.
    let out = stack.plan().assert_ok();
    assert!(!plan::changes(&out.stdout).is_empty(), "{out}");

    // force-unlock takes a stack name, not a spec: run it without the spec argument. Off a
    // terminal it names the holder and breaks nothing without --force (issue 15, item 13).
    let out = stack
        .run_bare(&["force-unlock", &stack.name], &[])
        .assert_failed();
    assert!(
        out.stderr.contains("is locked by ci@runner-7") && out.stderr.contains("--force"),
        "{out}"
    );
    stack.destroy().assert_failed();
    let out = stack
        .run_bare(&["force-unlock", "--force", &stack.name], &[])
        .assert_ok();
    assert!(out.stdout.contains("held by ci@runner-7"), "{out}");
    let out = stack
        .run_bare(&["force-unlock", "--force", &stack.name], &[])
        .assert_ok();
    assert!(out.stdout.contains("is not locked"), "{out}");

    stack.apply().assert_ok();
    // A finished run gives the lock back: the next one gets it.
    stack.destroy().assert_ok();
    assert_eq!(leftovers(&aws, &stack).await, Vec::<String>::new());
}

/// The messages in the stack's lock stream (empty when it is not locked).
async fn lock_events(aws: &Aws, stack: &str) -> Option<Vec<String>> {
    let out = aws
        .logs
        .get_log_events()
        .log_group_name(LOCK_GROUP)
        .log_stream_name(stack)
        .start_from_head(true)
        .send()
        .await
        .ok()?;
    Some(
        out.events()
            .iter()
            .filter_map(|e| e.message().map(str::to_owned))
            .collect(),
    )
}

/// Wait until a run has taken the stack's lock and said who it is.
fn wait_for_holder(aws: &Aws, stack: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !block_on(lock_events(aws, stack))
        .unwrap_or_default()
        .iter()
        .any(|m| m.contains("\"holder\""))
    {
        assert!(Instant::now() < deadline, "no run took the lock of {stack}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Issue 10, defect 4: the interrupt handler came after the prompt, so Ctrl-C there killed
/// the process with the lock held. Now it cancels, gives the lock back, changes nothing.
#[test]
fn ctrl_c_at_the_confirmation_prompt_gives_the_lock_back() {
    let aws = block_on(Aws::new());
    let stack = TestStack::new("prompt");
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes the two descriptors it opens; the rest may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: `slave` is an open descriptor that only this Stdio owns from here on.
    let tty = unsafe { std::process::Stdio::from(std::fs::File::from_raw_fd(slave)) };
    let spec = stack.write();
    let args = ["apply", "--no-wait", spec.to_str().unwrap()];
    let mut child = stack.spawn_with_stdin(&args, &[], tty);
    let (prompted, reader) = watch_stdout(&mut child, "Only 'yes' will be accepted");
    prompted
        .recv_timeout(Duration::from_secs(60))
        .expect("apply never asked for confirmation");
    assert!(
        block_on(lock_events(&aws, &stack.name)).is_some(),
        "the lock is held while the prompt waits"
    );
    signal(&child, libc::SIGINT);
    let mut out = stack.wait(&args, child);
    out.stdout = reader.join().unwrap();
    // SAFETY: the master end is ours and no longer used.
    unsafe {
        libc::close(master);
    }
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr
            .contains("apply cancelled by Ctrl-C at the prompt"),
        "{out}"
    );
    assert_eq!(
        block_on(lock_events(&aws, &stack.name)),
        None,
        "the lock is still held"
    );
    assert!(
        block_on(Ec2Stack::load(&aws, &stack.name)).vpcs.is_empty(),
        "a cancelled apply created something"
    );
}

/// A lock whose holder stopped renewing it for its lease is stale: the next run says whose it
/// was and when it was last renewed, takes it over and goes on.
#[test]
fn a_lock_not_renewed_for_its_lease_is_taken_over_naming_its_holder() {
    let aws = block_on(Aws::new());
    let stack = TestStack::new("lease");
    let holder = serde_json::json!({
        "holder": "ci@runner-9 (pid 77)", "host": "runner-9", "pid": 77,
        "operation": "destroy", "started_ms": now_ms(), "token": "0123abcd", "lease_ms": 1000,
    });
    block_on(take_lock(&aws, &stack.name, holder));
    // Its lease is one second; nobody renews it.
    std::thread::sleep(Duration::from_millis(2500));
    let out = stack.apply().assert_ok();
    assert!(
        out.stderr.contains(&format!(
            "took over the lock of stack \"{}\" from ci@runner-9 (pid 77) (destroy, for",
            stack.name
        )),
        "{out}"
    );
    // The seconds depend on how loaded the machine is; at least the 2.5 s slept have passed.
    let seconds_after = |marker: &str| -> u64 {
        let rest = &out.stderr
            [out.stderr.find(marker).unwrap_or_else(|| panic!("{out}")) + marker.len()..];
        rest[..rest.find('s').unwrap()]
            .parse()
            .unwrap_or_else(|_| panic!("{out}"))
    };
    assert!(seconds_after("last renewed ") >= 2, "{out}");
    assert!(seconds_after("it was not renewed for ") >= 2, "{out}");
    assert!(out.stderr.contains("s (its lease is 1s)"), "{out}");
    assert_eq!(block_on(lock_events(&aws, &stack.name)), None);
    stack.destroy().assert_ok();
    assert_eq!(block_on(leftovers(&aws, &stack)), Vec::<String>::new());
}

/// Issue 10, defect 5: a run killed with SIGKILL (a pre-empted CI runner) left its lock for
/// every later run until someone typed force-unlock. On the same host its dead pid makes the
/// lock stale at once: the next run takes it over and converges the stack.
#[test]
fn a_killed_runs_lock_is_taken_over_by_the_next_run() {
    let aws = block_on(Aws::new());
    let proxy = Proxy::start(&moto().endpoint, Config::realistic(31, TIME_SCALE));
    let stack = TestStack::new("killed");
    let env = [("AWS_ENDPOINT_URL", proxy.endpoint())];
    let spec = stack.write();
    let args = ["apply", "--auto-approve", spec.to_str().unwrap()];
    let mut child = stack.spawn(&args, &env);
    wait_for_holder(&aws, &stack.name);
    child.kill().expect("SIGKILL");
    let pid = child.id();
    let _ = child.wait();
    proxy.wait_idle();
    let out = stack.run_bare(&args, &env).assert_ok();
    assert!(
        out.stderr
            .contains(&format!("its process (pid {pid} on this host) is gone")),
        "{out}"
    );
    assert!(out.stderr.contains("took over the lock of stack"), "{out}");
    let out = stack.run_bare(&["plan", args[2]], &env).assert_ok();
    assert!(plan::is_converged(&out.stdout), "{out}");
    stack
        .run_bare(&["destroy", "--auto-approve", args[2]], &env)
        .assert_ok();
    assert_eq!(block_on(leftovers(&aws, &stack)), Vec::<String>::new());
}

/// A run paused (SIGSTOP) past its lease loses the lock to the next run; resumed, it notices
/// before its next change and stops: no changing AWS call of it reaches AWS after it resumed.
#[test]
fn a_paused_run_whose_lease_ran_out_stops_before_its_next_change() {
    let aws = block_on(Aws::new());
    let proxy = Proxy::start(&moto().endpoint, Config::realistic(37, TIME_SCALE));
    let stack = TestStack::new("paused");
    let spec = stack.write();
    let args = ["apply", "--auto-approve", spec.to_str().unwrap()];
    let paused_env = [
        ("AWS_ENDPOINT_URL", proxy.endpoint()),
        ("PREFECT_ECS_LOCK_LEASE", "2s"),
        // The proxy's log tells this run's calls from the next one's by the signing key.
        ("AWS_ACCESS_KEY_ID", "pausedrun"),
    ];
    let mut paused = stack.spawn(&args, &paused_env);
    let (creating, reader) = watch_stdout(&mut paused, "creating");
    creating
        .recv_timeout(Duration::from_secs(60))
        .expect("the first apply never started creating");
    signal(&paused, libc::SIGSTOP);
    // Its 2 s lease runs out while it is stopped.
    std::thread::sleep(Duration::from_secs(3));
    let env = [("AWS_ENDPOINT_URL", proxy.endpoint())];
    let next = stack.run_bare(&args, &env).assert_ok();
    assert!(
        next.stderr.contains("took over the lock of stack")
            && next.stderr.contains("it was not renewed for"),
        "{next}"
    );
    let resumed = Instant::now();
    signal(&paused, libc::SIGCONT);
    let mut out = stack.wait(&args, paused);
    out.stdout = reader.join().unwrap();
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains("lost the lock of stack")
            || out.stderr.contains("lock ran out before it was renewed"),
        "{out}"
    );
    let changes_after: Vec<String> = proxy
        .calls()
        .iter()
        .filter(|c| c.access_key == "pausedrun" && c.start > resumed)
        .filter(|c| {
            !["Describe", "List", "Get"]
                .iter()
                .any(|p| c.operation.starts_with(p))
        })
        .filter(|c| !(c.service == "logs" && c.operation.contains("LogStream")))
        .map(|c| format!("{}:{}", c.service, c.operation))
        .collect();
    assert_eq!(
        changes_after,
        Vec::<String>::new(),
        "the paused run changed AWS after it had lost the lock"
    );
    block_on(crate::realism::assert_no_duplicates(&aws, &stack));
    let out = stack.run_bare(&["plan", args[2]], &env).assert_ok();
    assert!(plan::is_converged(&out.stdout), "{out}");
    stack
        .run_bare(&["destroy", "--auto-approve", args[2]], &env)
        .assert_ok();
    assert_eq!(block_on(leftovers(&aws, &stack)), Vec::<String>::new());
}
