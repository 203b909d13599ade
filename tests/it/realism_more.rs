//! prefect-ecs against the AWS behaviours that happen only sometimes, each turned on in a proxy of
//! its own: a NAT gateway that fails, an IAM role ECS does not see yet, names still being released
//! right after a destroy.

use std::time::Duration;

use aws_sdk_ec2::types::NatGatewayState;

use crate::proxy::model::Span;
use crate::proxy::{Call, Config, Injected, Proxy};
use crate::realism::{assert_no_duplicates, block_on};
use crate::support::aws::{Aws, STACK_TAG, ec2_tags, leftovers};
use crate::support::{TestStack, moto, plan};

/// Scale of the AWS latency model: a 100 s service rollout takes 0.5 s.
const TIME_SCALE: f64 = 0.005;

fn count(calls: &[Call], operation: &str) -> usize {
    calls.iter().filter(|c| c.operation == operation).count()
}

/// The stack's NAT gateways in moto, by state. Read straight from moto, whose NAT state is the
/// last word of the tool (`deleted` once it deleted one), and filtered here: moto ignores tag
/// filters on DescribeNatGateways.
async fn nat_states(stack: &TestStack) -> Vec<NatGatewayState> {
    let aws = Aws::new().await;
    let out = aws.ec2.describe_nat_gateways().send().await;
    out.expect("DescribeNatGateways")
        .nat_gateways()
        .iter()
        .filter(|n| ec2_tags(n.tags()).get(STACK_TAG) == Some(&stack.name))
        .filter_map(|n| n.state().cloned())
        .collect()
}

#[test]
fn a_nat_gateway_that_fails_once_is_replaced_during_the_same_apply() {
    let proxy = Proxy::start(
        &moto().endpoint,
        Config::realistic(21, TIME_SCALE).with_failing_nats(1),
    );
    let stack = TestStack::new("natfail");
    let env = [("AWS_ENDPOINT_URL", proxy.endpoint())];
    let spec = stack.write();
    let spec = spec.to_str().unwrap();
    let out = stack
        .run_bare(&["apply", "--auto-approve", spec], &env)
        .assert_ok();
    assert!(
        // The progress shows it next to the resource.
        out.stdout
            .lines()
            .any(|l| l.contains("nat_gateway.nat[0]: NAT gateway")
                && l.contains(
                    "has no Internet gateway attached); deleting it and creating another"
                )),
        "apply did not report the failed NAT:\n{out}"
    );
    let out = stack.run_bare(&["plan", spec], &env).assert_ok();
    assert!(plan::is_converged(&out.stdout), "{out}");

    let calls = proxy.calls();
    assert_eq!(count(&calls, "CreateNatGateway"), 2, "{calls:#?}");
    assert_eq!(count(&calls, "DeleteNatGateway"), 1, "{calls:#?}");
    let mut states = block_on(nat_states(&stack));
    states.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(
        states,
        [NatGatewayState::Available, NatGatewayState::Deleted],
        "the failed NAT deleted, its replacement kept"
    );
    let aws = block_on(Aws::new());
    block_on(assert_no_duplicates(&aws, &stack));
}

#[test]
fn a_nat_gateway_that_keeps_failing_fails_the_apply_and_the_next_apply_converges() {
    let failing = Proxy::start(
        &moto().endpoint,
        Config::realistic(22, TIME_SCALE).with_failing_nats(3),
    );
    let stack = TestStack::new("natdead");
    let spec = stack.write();
    let spec = spec.to_str().unwrap();
    let out = stack
        .run_bare(
            &["apply", "--auto-approve", spec],
            &[("AWS_ENDPOINT_URL", failing.endpoint())],
        )
        .assert_failed();
    assert!(
        out.stderr
            .contains("+ nat_gateway.nat[0]: creating FAILED: ")
            && out
                .stderr
                .contains("has no Internet gateway attached (3 attempts)"),
        "apply did not name the NAT failure:\n{out}"
    );
    // What needs the NAT is not attempted: the private route, and through it the service.
    for dependent in [
        "route_table.private[0]".to_owned(),
        format!("ecs_service.{}", stack.worker(0)),
    ] {
        assert!(
            out.stderr.contains(&format!("skipped: {dependent} ")),
            "{dependent} not reported skipped:\n{out}"
        );
    }
    let calls = failing.calls();
    assert_eq!(count(&calls, "CreateNatGateway"), 3, "{calls:#?}");
    assert_eq!(count(&calls, "DeleteNatGateway"), 3, "{calls:#?}");

    // AWS works again: a proxy without the fault.
    let healthy = Proxy::start(&moto().endpoint, Config::realistic(23, TIME_SCALE));
    let env = [("AWS_ENDPOINT_URL", healthy.endpoint())];
    stack
        .run_bare(&["apply", "--auto-approve", spec], &env)
        .assert_ok();
    let out = stack.run_bare(&["plan", spec], &env).assert_ok();
    assert!(plan::is_converged(&out.stdout), "{out}");
    let aws = block_on(Aws::new());
    block_on(assert_no_duplicates(&aws, &stack));
}

#[test]
fn task_definitions_wait_for_new_roles_to_propagate() {
    let proxy = Proxy::start(
        &moto().endpoint,
        Config::realistic(24, TIME_SCALE).with_role_propagation(Duration::from_millis(1500)),
    );
    let stack = TestStack::new("iamlag");
    let env = [("AWS_ENDPOINT_URL", proxy.endpoint())];
    let spec = stack.write();
    let spec = spec.to_str().unwrap();
    let out = stack
        .run_bare(&["apply", "--auto-approve", spec], &env)
        .assert_ok();
    assert!(
        out.stdout.contains("Role is not valid"),
        "apply did not report the refused role:\n{out}"
    );
    let registers: Vec<Call> = proxy
        .calls()
        .into_iter()
        .filter(|c| c.operation == "RegisterTaskDefinition")
        .collect();
    let refused = registers
        .iter()
        .filter(|c| c.injected == Some(Injected::Refused("ClientException")))
        .count();
    assert!(refused >= 1, "never refused: {registers:#?}");
    assert_eq!(
        registers.last().and_then(|c| c.status),
        Some(200),
        "the last RegisterTaskDefinition did not succeed: {registers:#?}"
    );
    let out = stack.run_bare(&["plan", spec], &env).assert_ok();
    assert!(plan::is_converged(&out.stdout), "{out}");
}

/// Destroy, then apply the same stack at once: the secret's name is still being released. The
/// service's name is not refused: destroy waits for the service to be `INACTIVE`, which is when
/// AWS lets the name be used again, so the apply's CreateService goes through first time.
#[test]
fn apply_right_after_destroy_waits_for_names_being_released() {
    let mut config = Config::realistic(25, TIME_SCALE);
    // The model's 5–10 s scaled is 50 ms, gone before the next apply starts. DeleteSecret is
    // among the last calls of destroy and the next apply's first CreateSecret came about 0.5 s
    // after it when this was written (1-2 s since the work pool joined the stack, more on a
    // loaded machine: over 6 s once with the whole suite running on two cores, over 15 s
    // with a build beside it). 40 s refuses it even then; the apply waits out the rest.
    config.timings.secret_name_release = Span::fixed(Duration::from_secs(40));
    let proxy = Proxy::start(&moto().endpoint, config);
    let stack = TestStack::new("again");
    let env = [("AWS_ENDPOINT_URL", proxy.endpoint())];
    let spec = stack.write();
    let spec = spec.to_str().unwrap();
    stack
        .run_bare(&["apply", "--auto-approve", spec], &env)
        .assert_ok();
    stack
        .run_bare(&["destroy", "--auto-approve", spec], &env)
        .assert_ok();
    let aws = block_on(Aws::new());
    assert_eq!(block_on(leftovers(&aws, &stack)), Vec::<String>::new());
    proxy.reset_log();
    let out = stack
        .run_bare(&["apply", "--auto-approve", spec], &env)
        .assert_ok();
    assert!(
        out.stdout.lines().any(|l| l.contains("secret.api_key: ") && l.contains("already scheduled for deletion")),
        "apply did not report waiting for the secret name:\n{out}"
    );
    let out = stack.run_bare(&["plan", spec], &env).assert_ok();
    assert!(plan::is_converged(&out.stdout), "{out}");

    let calls = proxy.calls();
    let creates = |operation: &str| -> Vec<&Call> {
        calls.iter().filter(|c| c.operation == operation).collect()
    };
    let secrets = creates("CreateSecret");
    assert!(
        secrets.len() >= 2
            && secrets[0].injected == Some(Injected::Refused("InvalidRequestException"))
            && secrets.last().and_then(|c| c.status) == Some(200),
        "CreateSecret not refused then retried: {secrets:#?}"
    );
    let services = creates("CreateService");
    let ecs_services: Vec<_> = services.iter().filter(|c| c.service == "ecs").collect();
    assert!(
        ecs_services.len() == 1 && ecs_services[0].status == Some(200),
        "ECS CreateService refused although destroy waited for the drain: {ecs_services:#?}"
    );
}
