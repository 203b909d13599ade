//! What the tool must refuse or never do: adopt a resource it does not own, leak the API key
//! at any log level, or touch AWS with a spec that does not validate.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, TcpListener};

use crate::support::TestStack;
use crate::support::aws::{Aws, cluster, leftovers, queue};

#[tokio::test(flavor = "multi_thread")]
async fn foreign_same_named_cluster_is_refused() {
    let aws = Aws::new().await;
    let stack = TestStack::new("foreign");
    aws.ecs
        .create_cluster()
        .cluster_name(stack.cluster())
        .send()
        .await
        .expect("CreateCluster");

    for out in [stack.plan(), stack.apply()] {
        let out = out.assert_failed();
        let stderr = out.stderr.to_lowercase();
        assert!(
            out.stderr.contains(&stack.cluster())
                && ["not owned", "not tagged", "not managed", "owned by"]
                    .iter()
                    .any(|why| stderr.contains(why)),
            "the error must name the cluster and say it is not this stack's\n{out}"
        );
    }

    let left = leftovers(&aws, &stack).await;
    assert!(
        left.iter().all(|l| l.starts_with("ecs_cluster ")),
        "a refused apply created resources: {left:?}"
    );
    let (foreign, tags) = cluster(&aws, &stack.cluster()).await.expect("cluster");
    assert_eq!(
        foreign.status(),
        Some("ACTIVE"),
        "the foreign cluster was deleted"
    );
    assert!(tags.is_empty(), "the foreign cluster was tagged: {tags:?}");
}

/// The observer's queue and rule (issue 11, item 2) are guarded like every other kind: a
/// same-named queue that is not the stack's is refused, never adopted, tagged or deleted.
#[tokio::test(flavor = "multi_thread")]
async fn foreign_same_named_events_queue_is_refused() {
    let aws = Aws::new().await;
    let stack = TestStack::new("foreignq");
    aws.sqs
        .create_queue()
        .queue_name(stack.events_queue())
        .send()
        .await
        .expect("CreateQueue");
    for out in [stack.plan(), stack.apply()] {
        let out = out.assert_failed();
        assert!(
            out.stderr
                .contains(&format!("SQS queue {}", stack.events_queue()))
                && out.stderr.contains("not tagged"),
            "the error must name the queue and say it is not this stack's\n{out}"
        );
    }
    let left = leftovers(&aws, &stack).await;
    assert_eq!(
        left,
        [format!("sqs_queue {}", stack.events_queue())],
        "a refused apply created resources"
    );
    let (url, _, tags) = queue(&aws, &stack.events_queue()).await.expect("queue");
    assert!(tags.is_empty(), "the foreign queue was tagged: {tags:?}");
    aws.sqs
        .delete_queue()
        .queue_url(url)
        .send()
        .await
        .expect("DeleteQueue");
}

#[tokio::test(flavor = "multi_thread")]
async fn canary_never_leaks_with_trace_logging() {
    let aws = Aws::new().await;
    let stack = TestStack::new("trace");
    let trace = [("RUST_LOG", "trace")];
    // The run helper fails the test if the canary appears in any output.
    stack.run(&["validate"], &trace).assert_ok();
    stack.run(&["graph"], &trace).assert_ok();
    stack.run(&["plan"], &trace).assert_ok();
    let out = stack
        .run(&["apply", "--auto-approve", "--no-wait"], &trace)
        .assert_ok();
    // Otherwise this test would prove nothing about trace logging.
    assert!(
        out.stderr.contains("TRACE") || out.stdout.contains("TRACE"),
        "RUST_LOG=trace produced no trace output\n{out}"
    );
    stack.run(&["plan"], &trace).assert_ok();
    stack
        .run(&["destroy", "--auto-approve", "--no-wait"], &trace)
        .assert_ok();
    assert_eq!(leftovers(&aws, &stack).await, Vec::<String>::new());
}

#[test]
fn invalid_spec_makes_no_aws_calls() {
    let mut stack = TestStack::new("invalid");
    stack.cidr = "10.300.0.0/16".to_owned();
    let cidr_line = 1 + stack
        .spec_toml()
        .lines()
        .position(|l| l.starts_with("cidr = "))
        .expect("cidr line");
    let location = format!("spec.toml:{cidr_line}:");

    // Any AWS call would have to connect here; the backlog keeps the proof until we look.
    let aws = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    aws.set_nonblocking(true).expect("non-blocking");
    let endpoint = format!("http://{}", aws.local_addr().expect("address"));

    // `validate` takes no AWS flags (it makes no call); the others get the endpoint both ways.
    let flag = ["--endpoint-url", endpoint.as_str()];
    for command in [
        &["validate"][..],
        &["plan", flag[0], flag[1]],
        &["apply", "--auto-approve", "--no-wait", flag[0], flag[1]],
    ] {
        let out = stack
            .run(command, &[("AWS_ENDPOINT_URL", &endpoint)])
            .assert_failed();
        let located = out.stderr.match_indices(&location).any(|(i, _)| {
            out.stderr[i + location.len()..].starts_with(|c: char| c.is_ascii_digit())
        });
        assert!(located, "expected {location}<col> in stderr\n{out}");
    }

    match aws.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("prefect-ecs connected to AWS ({peer}) with an invalid spec"),
        Err(e) => panic!("accept: {e}"),
    }
}
