//! Spec edits: a changed worker size and a removed worker touch only what they must.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ecs::types::TaskDefinitionStatus;

use crate::support::TestStack;
use crate::support::aws::{
    Aws, active_revisions, discovery_services_named, ecs_service, leftovers, task_definition,
};
use crate::support::plan::{self, Action};
use crate::support::prefect::prefect;

#[tokio::test(flavor = "multi_thread")]
async fn cpu_change_registers_new_revision() {
    let aws = Aws::new().await;
    let mut stack = TestStack::new("cpu");
    let worker = stack.worker(0).to_owned();
    stack.apply().assert_ok();
    let old_revision = ecs_service(&aws, &stack.cluster(), &worker)
        .await
        .expect("service")
        .task_definition()
        .expect("task definition")
        .to_owned();

    stack.workers[0].cpu = 1024;
    stack.workers[0].memory = 2048;
    let out = stack.plan().assert_ok();
    assert!(
        !out.stdout.contains("changed outside"),
        "a spec change is not drift:\n{out}"
    );
    let changed: BTreeSet<String> = plan::changes(&out.stdout).into_keys().collect();
    assert_eq!(
        changed,
        BTreeSet::from([
            format!("ecs_task_definition.{worker}"),
            format!("ecs_service.{worker}")
        ]),
        "{out}"
    );
    // A new revision is either an update of the task definition or its replacement.
    let summary = plan::summary(&out.stdout);
    assert!(
        summary == Some((0, 2, 0)) || summary == Some((1, 1, 1)),
        "{out}"
    );

    stack.apply().assert_ok();
    let service = ecs_service(&aws, &stack.cluster(), &worker)
        .await
        .expect("service");
    let new_revision = service.task_definition().expect("task definition");
    assert_ne!(new_revision, old_revision);
    let (td, _) = task_definition(&aws, new_revision).await;
    assert_eq!(td.cpu(), Some("1024"));
    assert_eq!(td.memory(), Some("2048"));
    let (old, _) = task_definition(&aws, &old_revision).await;
    assert_eq!(old.status(), Some(&TaskDefinitionStatus::Inactive));
    assert_eq!(
        active_revisions(&aws, &worker).await,
        [new_revision.to_owned()]
    );

    let out = stack.plan().assert_ok();
    assert!(plan::is_converged(&out.stdout), "{out}");
    stack.destroy().assert_ok();
    assert_eq!(leftovers(&aws, &stack).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn removed_worker_is_deleted() {
    let aws = Aws::new().await;
    let mut stack = TestStack::new("rmworker");
    let w1 = stack.worker(0).to_owned();
    let w2 = stack.add_worker();
    stack.apply().assert_ok();

    let w1_service = ecs_service(&aws, &stack.cluster(), &w1)
        .await
        .expect("w1 service");
    let w1_registry = discovery_services_named(&aws, &w1).await;
    assert_eq!(w1_registry.len(), 1, "{w1_registry:?}");
    assert!(
        ecs_service(&aws, &stack.cluster(), &w2)
            .await
            .is_some_and(|s| s.status() == Some("ACTIVE")),
        "w2 was not deployed"
    );

    let pool2 = stack.workers[1].work_pool.clone();
    assert!(
        prefect().pool(&pool2).is_some(),
        "w2's pool was not created"
    );
    stack.workers.retain(|w| w.name != w2);
    let out = stack.plan().assert_ok();
    assert_eq!(
        plan::changes(&out.stdout),
        BTreeMap::from([
            (format!("ecs_service.{w2}"), Action::Delete),
            (format!("ecs_task_definition.{w2}"), Action::Delete),
            (format!("service_discovery_service.{w2}"), Action::Delete),
            // No worker uses it any more.
            (format!("prefect_work_pool.{pool2}"), Action::Delete),
        ]),
        "{out}"
    );
    assert_eq!(plan::summary(&out.stdout), Some((0, 0, 4)), "{out}");

    stack.apply().assert_ok();
    assert!(
        ecs_service(&aws, &stack.cluster(), &w2)
            .await
            .is_none_or(|s| s.status() == Some("INACTIVE")),
        "w2's ECS service is still there"
    );
    assert_eq!(active_revisions(&aws, &w2).await, Vec::<String>::new());
    assert_eq!(discovery_services_named(&aws, &w2).await.len(), 0);
    assert!(prefect().pool(&pool2).is_none(), "w2's pool is still there");

    let service = ecs_service(&aws, &stack.cluster(), &w1)
        .await
        .expect("w1 service");
    assert_eq!(service.status(), Some("ACTIVE"));
    assert_eq!(service.service_arn(), w1_service.service_arn());
    assert_eq!(service.task_definition(), w1_service.task_definition());
    assert_eq!(service.desired_count(), w1_service.desired_count());
    let registry = discovery_services_named(&aws, &w1).await;
    assert_eq!(
        registry.iter().map(|s| s.id()).collect::<Vec<_>>(),
        [w1_registry[0].id()],
        "w1's Cloud Map service was replaced"
    );

    let out = stack.plan().assert_ok();
    assert!(plan::is_converged(&out.stdout), "{out}");
    stack.destroy().assert_ok();
    assert_eq!(leftovers(&aws, &stack).await, Vec::<String>::new());
}

/// Issue 15, bug 4: a rotated API key reached Secrets Manager but not the running workers
/// (ECS reads `secrets` when a task starts). The services reading it get new tasks, after the
/// secret has its new value, and the plan says why.
#[test]
fn a_rotated_api_key_redeploys_the_workers_after_the_secret_changes() {
    use crate::proxy::{Config, Proxy};
    use crate::support::moto;
    let aws = crate::realism::block_on(Aws::new());
    let proxy = Proxy::start(&moto().endpoint, Config::realistic(31, 0.005));
    let env = [("AWS_ENDPOINT_URL", proxy.endpoint())];
    let mut stack = TestStack::new("rotate");
    let worker = stack.worker(0).to_owned();
    stack.run(&["apply", "--auto-approve"], &env).assert_ok();

    let rotated = crate::support::canary();
    stack.forbid(&rotated);
    let env = [
        ("AWS_ENDPOINT_URL", proxy.endpoint()),
        ("PREFECT_API_KEY", rotated.as_str()),
    ];
    let out = stack.run(&["plan"], &env).assert_ok();
    let changes = plan::changes(&out.stdout);
    assert_eq!(
        changes.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from(["secret.api_key".to_owned(), format!("ecs_service.{worker}")]),
        "{out}"
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains(&format!("ecs_service.{worker}"))
                && l.contains("# the secret it reads changed")),
        "{out}"
    );

    let before = proxy.calls().len();
    stack.run(&["apply", "--auto-approve"], &env).assert_ok();
    let calls = proxy.calls();
    let applied = &calls[before..];
    let at = |op: &str| applied.iter().position(|c| c.operation == op);
    let put = at("PutSecretValue")
        .or(at("UpdateSecret"))
        .expect("the secret was written");
    let update = at("UpdateService").expect("the service was updated");
    assert!(
        put < update,
        "the workers restarted before the new key was stored"
    );
    assert!(
        applied[update]
            .request
            .0
            .contains("\"forceNewDeployment\":true"),
        "UpdateService without forceNewDeployment ({} bytes)",
        applied[update].request.0.len()
    );
    let out = stack.run(&["plan"], &env).assert_ok();
    assert!(plan::is_converged(&out.stdout), "{out}");
    stack.run(&["destroy", "--auto-approve"], &env).assert_ok();
    assert_eq!(
        crate::realism::block_on(leftovers(&aws, &stack)),
        Vec::<String>::new()
    );
}

/// Issue 15, item 13: `--target` plans one worker and leaves the other's change for later,
/// saved and applied as reviewed; `--replace` gives a worker a new task definition though
/// nothing changed; an unknown address is refused with the closest one.
#[tokio::test(flavor = "multi_thread")]
async fn target_and_replace_act_on_what_they_name_and_leave_the_rest() {
    let aws = Aws::new().await;
    let mut stack = TestStack::new("target");
    let first = stack.worker(0).to_owned();
    let second = stack.add_worker();
    stack.apply().assert_ok();
    let cluster = stack.cluster();
    let revision = |worker: &str| {
        let (aws, cluster, worker) = (&aws, cluster.clone(), worker.to_owned());
        async move {
            ecs_service(aws, &cluster, &worker)
                .await
                .expect("service")
                .task_definition()
                .expect("task definition")
                .to_owned()
        }
    };
    let second_before = revision(&second).await;

    stack.workers[0].cpu = 1024;
    stack.workers[0].memory = 2048;
    stack.workers[1].cpu = 1024;
    stack.workers[1].memory = 2048;
    let target = format!("ecs_service.{first}");
    let out = stack.plan().assert_ok();
    assert_eq!(plan::changes(&out.stdout).len(), 4, "{out}");
    let out = stack.run(&["plan", "--target", &target], &[]).assert_ok();
    let changed: BTreeSet<String> = plan::changes(&out.stdout).into_keys().collect();
    assert_eq!(
        changed,
        BTreeSet::from([format!("ecs_task_definition.{first}"), target.clone()]),
        "{out}"
    );
    assert!(
        out.stdout
            .contains(&format!("Targeting is in effect: only {target}"))
            && out.stdout.contains("2 other changes are left out"),
        "{out}"
    );

    // Saved with its target, applied as reviewed: the saved plan is not stale.
    let saved = stack.path("first.plan");
    let saved = saved.to_str().unwrap();
    stack
        .run(&["plan", "--target", &target, "--out", saved], &[])
        .assert_ok();
    let out = stack
        .run_bare(&["apply", saved, "--target", &target], &[])
        .assert_failed();
    assert!(
        out.stderr.contains("already holds what it was made with"),
        "{out}"
    );
    // moto never completes a rollout: no wait, as every apply of these tests.
    stack
        .run_bare(&["apply", "--no-wait", saved], &[])
        .assert_ok();
    let (td, _) = task_definition(&aws, &revision(&first).await).await;
    assert_eq!(td.cpu(), Some("1024"));
    assert_eq!(
        revision(&second).await,
        second_before,
        "the other worker moved"
    );
    let out = stack.plan().assert_ok();
    let changed: BTreeSet<String> = plan::changes(&out.stdout).into_keys().collect();
    assert_eq!(
        changed,
        BTreeSet::from([
            format!("ecs_task_definition.{second}"),
            format!("ecs_service.{second}")
        ]),
        "{out}"
    );

    // The second worker back as it was: converged, then replaced on request.
    stack.workers[1].cpu = 512;
    stack.workers[1].memory = 1024;
    assert!(plan::is_converged(&stack.plan().assert_ok().stdout));
    let replace = format!("ecs_task_definition.{second}");
    let out = stack
        .run(
            &[
                "apply",
                "--auto-approve",
                "--no-wait",
                "--replace",
                &replace,
            ],
            &[],
        )
        .assert_ok();
    assert!(
        out.stdout.contains("replaced as requested (--replace)"),
        "{out}"
    );
    let second_after = revision(&second).await;
    assert_ne!(second_after, second_before);
    let (old, _) = task_definition(&aws, &second_before).await;
    assert_eq!(old.status(), Some(&TaskDefinitionStatus::Inactive));
    assert_eq!(active_revisions(&aws, &second).await, [second_after]);
    assert!(plan::is_converged(&stack.plan().assert_ok().stdout));

    let typo = format!("ecs_service.{first}x");
    let out = stack.run(&["plan", "--target", &typo], &[]).assert_failed();
    assert!(
        out.stderr
            .contains("no resource of this stack has that address")
            && out.stderr.contains(&format!("did you mean {target}?")),
        "{out}"
    );

    stack.destroy().assert_ok();
    assert_eq!(leftovers(&aws, &stack).await, Vec::<String>::new());
}

/// Issue 11, item 3: the task definitions the worker registers for flow runs (one family per
/// pool, `<stack>_<pool>`) exist because of the stack: destroy names them in its plan and
/// deregisters them; a family that only starts alike is someone else's and stays.
#[tokio::test(flavor = "multi_thread")]
async fn destroy_deregisters_the_flow_runs_task_definitions_of_its_pools_only() {
    let aws = Aws::new().await;
    let stack = TestStack::new("flowdefs");
    stack.apply().assert_ok();
    let pool = stack.workers[0].work_pool.clone();
    let ours = format!("{}_{pool}", stack.name);
    let theirs = format!("{ours}x");
    let register = |family: String| {
        let aws = &aws;
        async move {
            let container = aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("prefect")
                .image("prefecthq/prefect:3-latest")
                .build();
            aws.ecs
                .register_task_definition()
                .family(&family)
                .container_definitions(container)
                .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
                .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
                .cpu("256")
                .memory("512")
                .send()
                .await
                .expect("RegisterTaskDefinition")
                .task_definition
                .and_then(|t| t.task_definition_arn)
                .expect("arn")
        }
    };
    let first = register(ours.clone()).await;
    let second = register(ours.clone()).await;
    let other = register(theirs.clone()).await;

    // Apply and plan leave them alone: flow runs may still use them.
    let out = stack.plan().assert_ok();
    assert!(plan::is_converged(&out.stdout), "{out}");

    let out = stack.destroy().assert_ok();
    for revision in ["1", "2"] {
        assert!(
            out.stdout.contains(&format!(
                "- ecs_task_definition.{ours}:{revision}  # registered by the worker for flow runs of pool {pool}"
            )),
            "{out}"
        );
    }
    assert!(
        out.stdout
            .contains("# destroy, with every log stream in it (the flow runs' too)"),
        "{out}"
    );
    assert!(!out.stdout.contains(&theirs), "{out}");
    for arn in [&first, &second] {
        let (td, _) = task_definition(&aws, arn).await;
        assert_eq!(td.status(), Some(&TaskDefinitionStatus::Inactive), "{arn}");
    }
    assert_eq!(
        active_revisions(&aws, &theirs).await,
        std::slice::from_ref(&other)
    );
    assert_eq!(leftovers(&aws, &stack).await, Vec::<String>::new());
    aws.ecs
        .deregister_task_definition()
        .task_definition(&other)
        .send()
        .await
        .expect("clean up the other family");
}
