//! The per-stack lock: a run holding it makes apply and destroy fail at once naming the holder;
//! plan does not take it; force-unlock breaks a stale one.

use crate::support::TestStack;
use crate::support::aws::{Aws, Ec2Stack, leftovers};
use crate::support::plan;

const LOCK_GROUP: &str = "/prefect-ecs/locks";

/// Take the stack's lock the way another prefect-ecs run would: create its stream and say who.
async fn hold_lock(aws: &Aws, stack: &str, holder: &str) {
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
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let message = format!(
        r#"{{"holder": "{holder}", "operation": "apply", "started_ms": {}}}"#,
        now - 90_000
    );
    aws.logs
        .put_log_events()
        .log_group_name(LOCK_GROUP)
        .log_stream_name(stack)
        .log_events(
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(now)
                .message(message)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("write the holder");
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

    // force-unlock takes a stack name, not a spec: run it without the spec argument.
    let out = stack
        .run_bare(&["force-unlock", &stack.name], &[])
        .assert_ok();
    assert!(out.stdout.contains("held by ci@runner-7"), "{out}");
    let out = stack
        .run_bare(&["force-unlock", &stack.name], &[])
        .assert_ok();
    assert!(out.stdout.contains("is not locked"), "{out}");

    stack.apply().assert_ok();
    // A finished run gives the lock back: the next one gets it.
    stack.destroy().assert_ok();
    assert_eq!(leftovers(&aws, &stack).await, Vec::<String>::new());
}
