//! ARM workers (issues 12 and 14): the worker's task definition and its pool's flow runs on
//! ARM64, read back from ECS and Prefect; a change of architecture is a new revision, and the
//! plan prices the tasks at Fargate's ARM rates.

use crate::support::aws::{self, Aws};
use crate::support::{TestStack, moto};

#[tokio::test(flavor = "multi_thread")]
async fn an_arm_worker_and_its_flow_runs_run_on_arm64() {
    let aws = Aws::for_endpoint(&moto().endpoint).await;
    let mut stack = TestStack::new("arm");
    stack.workers[0].architecture = Some("arm64");
    let out = stack.plan().assert_ok();
    assert!(
        out.stdout
            .contains("1 Fargate task(s) of 0.5 vCPU and 1 GB, ARM"),
        "{out}"
    );
    stack.apply().assert_ok();

    let w = stack.worker(0).to_owned();
    let service = aws::ecs_service(&aws, &stack.cluster(), &w)
        .await
        .expect("service");
    let (td, _) = aws::task_definition(&aws, service.task_definition().expect("td")).await;
    let platform = td.runtime_platform().expect("runtimePlatform");
    assert_eq!(
        platform.cpu_architecture().map(|a| a.as_str()),
        Some("ARM64")
    );
    assert_eq!(
        platform.operating_system_family().map(|o| o.as_str()),
        Some("LINUX")
    );
    let pool = crate::support::prefect::prefect()
        .pool(&stack.workers[0].work_pool)
        .expect("pool");
    assert_eq!(
        pool["base_job_template"]["job_configuration"]["task_definition"]["runtimePlatform"]["cpuArchitecture"],
        "ARM64"
    );
    stack.run(&["plan", "--detailed-exitcode"], &[]).assert_ok();

    // Back to x86: a new revision of the worker's task definition, the pool's template back to
    // the server's.
    stack.workers[0].architecture = None;
    let out = stack.plan().assert_ok();
    let td_address = format!("ecs_task_definition.{w}");
    assert!(out.stdout.contains(&format!("+/- {td_address}")), "{out}");
    assert!(
        out.stdout
            .contains("cpu_architecture: \"ARM64\" → \"X86_64\""),
        "{out}"
    );
    stack.apply().assert_ok();
    stack.run(&["plan", "--detailed-exitcode"], &[]).assert_ok();
    stack.destroy().assert_ok();
    assert_eq!(aws::leftovers(&aws, &stack).await, Vec::<String>::new());
}
