//! Apply is done when the worker is online: it waits for the worker's heartbeat in its pool,
//! and when none comes, it ends with a diagnosis (stopped tasks, the worker's log, the likely
//! cause), not a bare timeout.

use aws_sdk_ecs::types::{AwsVpcConfiguration, LaunchType, NetworkConfiguration};

use crate::proxy::{Config, Proxy};
use crate::support::aws::{Aws, Ec2Stack, at, put_log_lines};
use crate::support::{TestStack, moto, prefect};

#[tokio::test(flavor = "multi_thread")]
async fn apply_waits_for_the_workers_heartbeat_and_then_finishes() {
    // Through the realism proxy the ECS service reaches its desired count, as on AWS; the
    // test plays the worker's heartbeat (moto runs no containers).
    let proxy = Proxy::start(&moto().endpoint, Config::realistic(21, 0.005));
    let stack = TestStack::new("online");
    let env = [("AWS_ENDPOINT_URL", proxy.endpoint())];
    let out = stack.run(&["apply", "--auto-approve"], &env).assert_ok();
    assert!(
        out.stderr.contains(&format!(
            "worker {} is online in work pool {}",
            stack.workers[0].name, stack.workers[0].work_pool
        )),
        "{out}"
    );
    stack.destroy().assert_ok();
}

/// ECS replaced the worker's task, and the old one heartbeated under the same name: Prefect
/// keeps showing the worker ONLINE for three intervals after the old task's last heartbeat.
/// That is not the new task being online.
#[tokio::test(flavor = "multi_thread")]
async fn a_redeployed_worker_needs_a_heartbeat_from_its_new_task() {
    let proxy = Proxy::start(&moto().endpoint, Config::realistic(23, 0.005));
    let mut stack = TestStack::new("redeploy");
    let env = [("AWS_ENDPOINT_URL", proxy.endpoint())];
    stack.run(&["apply", "--auto-approve"], &env).assert_ok();
    let (pool, worker) = (
        stack.workers[0].work_pool.clone(),
        stack.workers[0].name.clone(),
    );

    // The old task is gone and the new one never starts; Prefect still says ONLINE.
    stack.workers_online = false;
    prefect::forget(&pool, &worker);
    stack.workers[0].cpu = 1024;
    stack.workers[0].memory = 2048;
    let out = stack
        .run(
            &["apply", "--auto-approve"],
            &[env[0], ("PREFECT_ECS_WORKER_TIMEOUT", "3s")],
        )
        .assert_failed();
    let text = format!("{}{}", out.stdout, out.stderr);
    for expected in [
        format!("worker {worker} did not come online within 3s"),
        "likely cause: the worker's last heartbeat is from the task this apply replaced".into(),
    ] {
        assert!(text.contains(&expected), "missing {expected:?}\n{out}");
    }
    assert_eq!(
        prefect::prefect().worker_status(&pool, &worker).as_deref(),
        Some("ONLINE"),
        "the test proves nothing unless Prefect still showed the old heartbeat as ONLINE"
    );

    // The new task's heartbeat arrives: the gate passes.
    stack.workers_online = true;
    stack.run(&["apply", "--auto-approve"], &env).assert_ok();
    stack.destroy().assert_ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_never_comes_online_gets_a_diagnosis() {
    let aws = Aws::new().await;
    let mut stack = TestStack::new("offline");
    stack.workers_online = false;
    let worker = stack.workers[0].name.clone();
    stack.apply().assert_ok();

    // What ECS and CloudWatch would hold for a worker task that could not read its secret,
    // and for one whose key Prefect refused.
    let ec2 = Ec2Stack::load(&aws, &stack.name).await;
    let subnet = at(&ec2.subnets, "subnet.private[0]")
        .subnet_id()
        .expect("subnet")
        .to_owned();
    let sg = at(&ec2.security_groups, "security_group.worker")
        .group_id()
        .expect("SG")
        .to_owned();
    // moto cannot run a task whose container has no memory of its own (valid on Fargate,
    // where the task's memory is enough), so the stopped task comes from a copy that has one.
    let family = format!("{worker}-stopped");
    aws.ecs
        .register_task_definition()
        .family(&family)
        .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
        .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
        .cpu("512")
        .memory("1024")
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("worker")
                .image("prefecthq/prefect:3-latest")
                .memory(1024)
                .build(),
        )
        .send()
        .await
        .expect("RegisterTaskDefinition");
    let task = aws
        .ecs
        .run_task()
        .cluster(stack.cluster())
        .task_definition(&family)
        .launch_type(LaunchType::Fargate)
        .group(format!("service:{worker}"))
        .network_configuration(
            NetworkConfiguration::builder()
                .awsvpc_configuration(
                    AwsVpcConfiguration::builder()
                        .subnets(subnet)
                        .security_groups(sg)
                        .build()
                        .expect("awsvpc"),
                )
                .build(),
        )
        .send()
        .await
        .expect("RunTask")
        .tasks()[0]
        .task_arn()
        .expect("task ARN")
        .to_owned();
    let reason = "ResourceInitializationError: unable to pull secrets or registry auth: \
                  execution resource retrieval failed: unable to retrieve secret from asm: \
                  service call has been retried 5 time(s): RequestError: send request failed \
                  caused by: Post \"https://secretsmanager.us-east-1.amazonaws.com/\": dial tcp \
                  10.0.0.1:443: i/o timeout";
    aws.ecs
        .stop_task()
        .cluster(stack.cluster())
        .task(&task)
        .reason(reason)
        .send()
        .await
        .expect("StopTask");
    let task_id = task.rsplit('/').next().expect("task id");
    let stream = format!("{worker}/worker/{task_id}");
    let lines = [
        "Worker 'ECSWorker 1f2e' started!",
        "prefect.exceptions.PrefectHTTPStatusError: Client error '401 Unauthorized' for url 'https://api.prefect.cloud/api/accounts/x/workspaces/y/work_pools/p'",
    ];
    put_log_lines(&aws, &stack.log_group(), &stream, &lines).await;

    // Nothing to change: apply goes straight to the gate, which gives up after 3 s.
    let out = stack
        .run(
            &["apply", "--auto-approve"],
            &[("PREFECT_ECS_WORKER_TIMEOUT", "3s")],
        )
        .assert_failed();
    let text = format!("{}{}", out.stdout, out.stderr);
    for expected in [
        format!("worker {worker} did not come online within 3s"),
        format!("stopped task {task_id}: ResourceInitializationError"),
        format!("last 2 log lines ({stream})"),
        "| prefect.exceptions.PrefectHTTPStatusError: Client error '401 Unauthorized'".into(),
        "likely cause: the task could not reach Secrets Manager".into(),
        "likely cause: Prefect answered 401 Unauthorized".into(),
        "Prefect: no heartbeat from a worker of this name".into(),
    ] {
        assert!(text.contains(&expected), "missing {expected:?}\n{out}");
    }

    // With the worker online, the same apply passes the gate.
    stack.workers_online = true;
    stack.run(&["apply", "--auto-approve"], &[]).assert_ok();
    stack.destroy().assert_ok();
}

/// moto never runs a task, so without the proxy a service never reaches its desired count:
/// the apply's service step ends at its deadline with the diagnosis, not a bare timeout, and
/// the worker's log lines in it never show the key.
#[tokio::test(flavor = "multi_thread")]
async fn a_service_that_never_stabilizes_gets_a_diagnosis() {
    let aws = Aws::new().await;
    let mut stack = TestStack::new("unstable");
    stack.apply().assert_ok();
    let worker = stack.workers[0].name.clone();
    let stream = format!("{worker}/worker/5ca1ab1e");
    let leaked = format!("PREFECT_API_KEY={}", stack.canary());
    put_log_lines(
        &aws,
        &stack.log_group(),
        &stream,
        &["Starting worker...", &leaked],
    )
    .await;

    stack.workers[0].cpu = 1024;
    stack.workers[0].memory = 2048;
    let out = stack
        .run(
            &["apply", "--auto-approve"],
            &[("PREFECT_ECS_TIMEOUT", "3s")],
        )
        .assert_failed();
    let text = format!("{}{}", out.stdout, out.stderr);
    for expected in [
        format!("ECS service {worker} to reach its desired count"),
        format!(
            "worker {worker} (work pool {}):",
            stack.workers[0].work_pool
        ),
        "ECS service: 1 desired, ".into(),
        "; deployment IN_PROGRESS".into(),
        format!("last 2 log lines ({stream})"),
        "| PREFECT_API_KEY=(sensitive)".into(),
    ] {
        assert!(text.contains(&expected), "missing {expected:?}\n{out}");
    }
    stack.destroy().assert_ok();
}
