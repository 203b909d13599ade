//! The real prefect-aws ECS worker (PyPI prefect-aws, the release the pool template is written
//! for), run by the test as its ECS task would run it, against moto and the local Prefect
//! server: it is what passes apply's online gate, and a flow run of a deployment in the
//! stack's pool becomes a task in the stack's cluster, network and roles, with the API key
//! from the stack's secret and nowhere else. moto runs no containers, so the test plays the
//! ECS task the worker is; everything the worker asks of AWS is real prefect-aws code.

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prefect_ecs::graph::flow_run_family;
use prefect_ecs::policy::{Request, allows};
use serde_json::json;

use crate::proxy::{Call, Config, Proxy};
use crate::realism::block_on;
use crate::support::aws::{
    Aws, Ec2Stack, at, ecs_service, inline_policies, queue, secret_arn, task_definition,
};
use crate::support::prefect::{prefect, prefect_bin};
use crate::support::{TestStack, moto};

/// `prefect worker start --type ecs` in a process group of its own, stopped (and timed) on drop.
struct RealWorker {
    child: Option<Child>,
    log: std::path::PathBuf,
}

impl RealWorker {
    /// The worker named `name` polling `pool`, with the environment its task would have: the
    /// API URL, the key (the container gets it from the stack's secret), AWS through
    /// `aws_endpoint`.
    fn start(
        dir: &Path,
        pool: &str,
        name: &str,
        aws_endpoint: &str,
        api_key: &str,
        observer: &[(&str, String)],
    ) -> Self {
        let home = dir.join("worker-home");
        std::fs::create_dir_all(&home).expect("worker home");
        let log = dir.join("worker.log");
        let out = std::fs::File::create(&log).expect("worker log");
        let child = Command::new(prefect_bin())
            .args([
                "worker", "start", "--pool", pool, "--type", "ecs", "--name", name,
            ])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("PREFECT_HOME", &home)
            .env("PREFECT_API_URL", &prefect().api_url)
            .env("PREFECT_API_KEY", api_key)
            .env("PREFECT_WORKER_HEARTBEAT_SECONDS", "5")
            .env("PREFECT_WORKER_QUERY_SECONDS", "2")
            .env("DO_NOT_TRACK", "1")
            .env("AWS_ENDPOINT_URL", aws_endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", home.join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                home.join("no-aws-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(observer.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("start the prefect-aws worker");
        RealWorker {
            child: Some(child),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM to the worker's process group, as ECS stops a task; how long it took to exit
    /// (SIGKILL after 60 s, as ECS would after the stop timeout).
    fn stop(&mut self) -> Option<Duration> {
        let mut child = self.child.take()?;
        let group = -(child.id() as i32);
        // SAFETY: kill(2) on the process group this struct started.
        unsafe { libc::kill(group, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if child.try_wait().ok().flatten().is_some() {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = child.wait();
        None
    }
}

impl Drop for RealWorker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_real_worker_passes_the_online_gate_and_runs_flow_runs_in_the_stack() {
    // prefect-ecs talks to AWS through the realism proxy (its ECS service reaches its desired
    // count there, as on AWS); the worker through one that only logs what it sent.
    let realism = Proxy::start(&moto().endpoint, Config::realistic(31, 0.005));
    let proxy = Proxy::start(&moto().endpoint, Config::passthrough());
    let tool = [("AWS_ENDPOINT_URL", realism.endpoint())];
    let mut stack = TestStack::new("real-worker");
    // No heartbeat played by the harness: only the real worker can pass the gate.
    stack.workers_online = false;
    let (pool, name) = (
        stack.workers[0].work_pool.clone(),
        stack.workers[0].name.clone(),
    );

    let spec = stack.write();
    let apply = stack.spawn(&["apply", "--auto-approve", spec.to_str().unwrap()], &tool);
    // `prefect worker start --pool P` makes P itself when it does not exist: the worker starts
    // once apply has made the pool, as the worker's ECS task does.
    wait_for("the work pool", Duration::from_secs(120), || {
        prefect().pool(&pool)
    });
    // The worker as its task runs it: the stack's worker name, the key, AWS (through the
    // logging proxy), the observer reading the stack's queue (checked against the task
    // definition below).
    let observer = [
        (
            "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_ENABLED",
            "true".to_owned(),
        ),
        (
            "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME",
            stack.events_queue(),
        ),
        (
            "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_REGION",
            crate::support::REGION.to_owned(),
        ),
    ];
    let start_worker = || {
        RealWorker::start(
            &stack.path(""),
            &pool,
            &name,
            proxy.endpoint(),
            stack.canary(),
            &observer,
        )
    };
    let mut worker = start_worker();
    let out = stack.wait(&["apply"], apply);
    assert_eq!(out.code, 0, "{out}\nworker log:\n{}", worker.log());
    assert!(
        out.stderr
            .contains(&format!("worker {name} is online in work pool {pool}")),
        "{out}"
    );

    // A deployment in the pool and a flow run of it: the worker submits it to ECS.
    let (deployment, flow_run) = prefect().create_flow_run(&pool, &format!("{}-flow", stack.name));
    let run_task = wait_for("the worker's RunTask", Duration::from_secs(90), || {
        proxy
            .calls()
            .into_iter()
            .find(|c| c.operation == "RunTask" && c.status == Some(200))
    });
    let aws = block_on(Aws::new());
    let ec2 = block_on(Ec2Stack::load(&aws, &stack.name));
    let tasks = block_on(aws.ecs.list_tasks().cluster(stack.cluster()).send()).expect("ListTasks");
    assert_eq!(tasks.task_arns().len(), 1, "{run_task:?}");
    let described = block_on(
        aws.ecs
            .describe_tasks()
            .cluster(stack.cluster())
            .set_tasks(Some(tasks.task_arns().to_vec()))
            .send(),
    )
    .expect("DescribeTasks");
    let task = &described.tasks()[0];
    assert_eq!(task.launch_type().map(|l| l.as_str()), Some("FARGATE"));
    assert!(
        task.cluster_arn()
            .unwrap_or_default()
            .ends_with(&format!("/{}", stack.cluster())),
        "{task:?}"
    );
    // The flow run runs where the pool says: the stack's private subnets and security group,
    // no public IP, the flow-run role.
    let (_, body) = run_task.request.0.split_once(' ').expect("path and body");
    let run: serde_json::Value = serde_json::from_str(body).expect("RunTask is JSON");
    let network = &run["networkConfiguration"]["awsvpcConfiguration"];
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    };
    let mut private: Vec<String> = ec2
        .subnets
        .iter()
        .filter(|(a, _)| a.starts_with("subnet.private"))
        .map(|(_, s)| s.subnet_id().unwrap_or_default().to_owned())
        .collect();
    private.sort();
    let mut subnets = strings(&network["subnets"]);
    subnets.sort();
    assert!(!private.is_empty());
    assert_eq!(subnets, private, "{run}");
    let sg = at(&ec2.security_groups, "security_group.worker")
        .group_id()
        .unwrap_or_default();
    assert_eq!(strings(&network["securityGroups"]), [sg], "{run}");
    assert_eq!(network["assignPublicIp"], "DISABLED", "{run}");
    assert_eq!(run["launchType"], "FARGATE", "{run}");
    let flow_run_role = format!("role/{}", stack.flow_run_role());
    assert!(
        run["overrides"]["taskRoleArn"]
            .as_str()
            .is_some_and(|r| r.ends_with(&flow_run_role)),
        "{run}"
    );
    // Its task definition: the stack's execution role, its log group, and the key only as a
    // reference to the stack's secret.
    let td = block_on(
        aws.ecs
            .describe_task_definition()
            .task_definition(task.task_definition_arn().unwrap_or_default())
            .send(),
    )
    .expect("DescribeTaskDefinition");
    let td = td.task_definition().expect("a task definition");
    assert!(
        td.execution_role_arn()
            .unwrap_or_default()
            .ends_with(&format!("role/{}", stack.execution_role())),
        "{td:?}"
    );
    let container = &td.container_definitions()[0];
    let options = container
        .log_configuration()
        .and_then(|l| l.options())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        options.get("awslogs-group").map(String::as_str),
        Some(stack.log_group().as_str()),
        "{td:?}"
    );
    let secret = block_on(secret_arn(&aws, &stack.secret_name()));
    assert!(
        container
            .secrets()
            .iter()
            .any(|s| s.name() == "PREFECT_API_KEY" && s.value_from() == secret),
        "the flow run does not read the key from the stack's secret: {td:?}"
    );
    // The key itself: in none of the worker's AWS requests, nor in what ECS holds.
    let calls = proxy.calls();
    assert!(calls.len() > 3, "{calls:?}");
    for c in &calls {
        assert!(
            !c.request.0.contains(stack.canary()),
            "the API key was sent to AWS in {} {}",
            c.service,
            c.operation
        );
    }
    for (what, text) in [
        ("task", format!("{task:?}")),
        ("task definition", format!("{td:?}")),
    ] {
        assert!(
            !text.contains(stack.canary()),
            "the API key is in the {what}"
        );
    }
    // The worker tells Prefect which task runs the flow run right after RunTask answers.
    let state = wait_for(
        "Prefect to know the flow run's task",
        Duration::from_secs(30),
        || {
            let state = prefect().flow_run(&flow_run);
            state["infrastructure_pid"].is_string().then_some(state)
        },
    );
    assert_eq!(state["deployment_id"], deployment.as_str());
    assert!(
        state["infrastructure_pid"]
            .as_str()
            .is_some_and(|p| p.contains(tasks.task_arns()[0].as_str())),
        "Prefect knows another task for the flow run: {state}"
    );

    // Every call the worker made is one its policy, as applied, allows in this stack, and
    // the same call on another cluster is denied.
    let policy = block_on(inline_policies(&aws, &stack.task_role()))
        .into_iter()
        .next()
        .expect("the worker's policy");
    let cluster_arn = task.cluster_arn().unwrap_or_default().to_owned();
    let other_cluster = cluster_arn.replace(&stack.cluster(), "someone-elses-cluster");
    let mut checked = BTreeSet::new();
    for c in calls.iter().filter(|c| c.status == Some(200)) {
        for r in iam_requests(c, &cluster_arn) {
            assert!(
                allows(&policy, &r),
                "the worker's policy denies {r:?}: {policy}"
            );
            checked.insert(r.action.clone());
            if r.context.contains_key("ecs:cluster") {
                let elsewhere = r.clone().with("ecs:cluster", &other_cluster);
                assert!(
                    !allows(&policy, &elsewhere),
                    "allowed on another cluster: {elsewhere:?}"
                );
            }
        }
    }
    for action in [
        "ecs:RegisterTaskDefinition",
        "ecs:RunTask",
        "ecs:TagResource",
        "iam:PassRole",
        "ec2:DescribeSubnets",
    ] {
        assert!(
            checked.contains(action),
            "{action} is not among the worker's calls: {checked:?}"
        );
    }

    // Crash detection (issue 11, item 2): ECS reports the flow run's task stopped with a
    // failed container. moto's ECS emits no events, so the harness sends the event ECS would
    // send to EventBridge; the stack's rule routes it to the stack's queue, and the real
    // worker's observer, reading that queue, marks the flow run crashed.
    let event = json!({
        "clusterArn": cluster_arn,
        "taskArn": tasks.task_arns()[0],
        "taskDefinitionArn": task.task_definition_arn(),
        "lastStatus": "STOPPED",
        "desiredStatus": "STOPPED",
        "stopCode": "EssentialContainerExited",
        "stoppedReason": "Essential container in task exited",
        "containers": [{"name": "prefect", "exitCode": 1, "lastStatus": "STOPPED"}],
    });
    let sent = block_on(
        aws.events
            .put_events()
            .entries(
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .source("aws.ecs")
                    .detail_type("ECS Task State Change")
                    .resources(tasks.task_arns()[0].clone())
                    .detail(event.to_string())
                    .build(),
            )
            .send(),
    )
    .expect("PutEvents");
    assert_eq!(sent.failed_entry_count(), 0, "{sent:?}");
    let crashed = wait_for(
        "the observer to mark the flow run crashed",
        Duration::from_secs(60),
        || {
            let state = prefect().flow_run(&flow_run);
            (state["state"]["type"] == "CRASHED").then_some(state)
        },
    );
    assert!(
        crashed["state"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("non-zero exit code")),
        "{crashed}\nworker log:\n{}",
        worker.log()
    );
    // It read the stack's queue with the stack's own permissions: each SQS call above was
    // checked against the worker's policy, and the same call on another queue is denied.
    let (_, queue_attrs, _) = block_on(queue(&aws, &stack.events_queue())).expect("the queue");
    let queue_arn = queue_attrs["QueueArn"].clone();
    for action in ["sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:DeleteMessage"] {
        // The message is deleted (acknowledged) once the crash is proposed: soon after.
        let allowed = || {
            proxy
                .calls()
                .iter()
                .filter(|c| c.status == Some(200))
                .any(|c| {
                    iam_requests(c, &cluster_arn).iter().any(|r| {
                        r.action == action && r.resource == queue_arn && allows(&policy, r)
                    })
                })
        };
        let start = Instant::now();
        while !allowed() && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(200));
        }
        let sqs: Vec<_> = proxy
            .calls()
            .into_iter()
            .filter(|c| c.service == "sqs")
            .map(|c| (c.operation, c.status, c.request.0))
            .collect();
        assert!(
            allowed(),
            "the worker made no allowed {action} on {queue_arn}: {sqs:?}"
        );
        let elsewhere = Request::new(action, &queue_arn.replace(&stack.name, "someone-else"));
        assert!(
            !allows(&policy, &elsewhere),
            "allowed on another queue: {elsewhere:?}"
        );
    }
    // The worker's task runs the observer with exactly these settings.
    let service = block_on(ecs_service(&aws, &stack.cluster(), &name)).expect("the service");
    let (worker_td, _) = block_on(task_definition(
        &aws,
        service.task_definition().unwrap_or_default(),
    ));
    let env: BTreeSet<(String, String)> = worker_td.container_definitions()[0]
        .environment()
        .iter()
        .map(|e| {
            (
                e.name().unwrap_or_default().to_owned(),
                e.value().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for (k, v) in &observer {
        assert!(
            env.contains(&(k.to_string(), v.clone())),
            "the worker's task lacks {k}={v}: {env:?}"
        );
    }

    // ECS stops a worker's task with SIGTERM: it must exit within the task's stop timeout.
    let stopped = worker.stop();
    eprintln!("the prefect-aws worker exited {stopped:?} after SIGTERM");
    let stop_timeout = worker_td.container_definitions()[0]
        .stop_timeout()
        .expect("the worker's stop timeout");
    assert!(
        stopped.is_some_and(|t| t < Duration::from_secs(stop_timeout as u64)),
        "the worker did not exit within its task's stop timeout ({stop_timeout} s)"
    );

    // A restarted worker reuses the pool's family and its latest revision: one task
    // definition for every flow run of the pool, not one per run or per restart.
    let mut worker = start_worker();
    let (_, second) = prefect().create_flow_run(&pool, &format!("{}-again", stack.name));
    wait_for(
        "the second flow run's RunTask",
        Duration::from_secs(90),
        || {
            let runs = proxy
                .calls()
                .iter()
                .filter(|c| c.operation == "RunTask" && c.status == Some(200))
                .count();
            (runs >= 2).then_some(())
        },
    );
    let registered = proxy
        .calls()
        .iter()
        .filter(|c| c.operation == "RegisterTaskDefinition")
        .count();
    assert_eq!(
        registered, 1,
        "a restarted worker registered a new revision"
    );
    assert_eq!(
        td.family(),
        Some(flow_run_family(&stack.name, &pool).as_str()),
        "{td:?}"
    );
    wait_for(
        "Prefect to know the second flow run's task",
        Duration::from_secs(30),
        || {
            prefect().flow_run(&second)["infrastructure_pid"]
                .is_string()
                .then_some(())
        },
    );
    worker.stop();

    // Flow-run tasks end with their flows; moto runs none, so they are stopped here.
    let tasks = block_on(aws.ecs.list_tasks().cluster(stack.cluster()).send())
        .expect("ListTasks")
        .task_arns()
        .to_vec();
    for t in tasks {
        block_on(aws.ecs.stop_task().cluster(stack.cluster()).task(t).send()).expect("StopTask");
    }
    stack.run(&["destroy", "--auto-approve"], &tool).assert_ok();
}

/// What IAM authorizes for one of the worker's calls: its action, resource and condition
/// keys, and what authorizes with it (tagging what it creates, passing a role).
fn iam_requests(call: &Call, cluster_arn: &str) -> Vec<Request> {
    let Some((_, body)) = call.request.0.split_once(' ') else {
        return Vec::new();
    };
    let body: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let action = format!("{}:{}", call.service, call.operation);
    let in_cluster = |r: Request| r.with("ecs:cluster", cluster_arn);
    let pass = |role: &serde_json::Value| {
        role.as_str().map(|r| {
            Request::new("iam:PassRole", r).with("iam:PassedToService", "ecs-tasks.amazonaws.com")
        })
    };
    let tag = |create: &str| {
        body["tags"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
            .then(|| Request::new("ecs:TagResource", "*").with("ecs:CreateAction", create))
    };
    match (call.service.as_str(), call.operation.as_str()) {
        ("ecs", "RunTask") => [
            Some(in_cluster(Request::new(&action, "*"))),
            tag("RunTask"),
            pass(&body["overrides"]["taskRoleArn"]),
        ]
        .into_iter()
        .flatten()
        .collect(),
        ("ecs", "RegisterTaskDefinition") => [
            Some(Request::new(&action, "*")),
            tag("RegisterTaskDefinition"),
            pass(&body["executionRoleArn"]),
            pass(&body["taskRoleArn"]),
        ]
        .into_iter()
        .flatten()
        .collect(),
        ("ecs", "DescribeTasks" | "StopTask") => vec![in_cluster(Request::new(&action, "*"))],
        ("logs", "GetLogEvents") => vec![Request::new(
            &action,
            &format!(
                "{}:log-stream:{}",
                body["logGroupName"].as_str().unwrap_or_default(),
                body["logStreamName"].as_str().unwrap_or_default()
            ),
        )],
        // The observer's calls name the queue by name or URL: IAM authorizes them on its ARN.
        ("sqs", _) => {
            let name = body["QueueName"]
                .as_str()
                .or_else(|| body["QueueUrl"].as_str()?.rsplit('/').next())
                .unwrap_or_default();
            // The account and region are the cluster's.
            let at = cluster_arn.splitn(6, ':').collect::<Vec<_>>();
            vec![Request::new(
                &action,
                &format!("arn:aws:sqs:{}:{}:{name}", at[3], at[4]),
            )]
        }
        ("ecs" | "ec2", _) => vec![Request::new(&action, "*")],
        _ => Vec::new(),
    }
}
