//! The proxy's own tests: real SDK calls through the proxy to the shared moto server. Time is
//! scaled so every pending state lasts well under a second; only lower bounds on time are
//! asserted, never upper ones (a loaded CI machine is slow, never fast). Declared in `main.rs`,
//! not in `proxy/`, so that the benchmark harness can include the proxy without them.

use std::future::Future;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::config::Credentials;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{DomainType, NatGatewayState};
use aws_sdk_ecs::types::{
    AwsVpcConfiguration, Compatibility, ContainerDefinition, DeploymentCircuitBreaker,
    DeploymentConfiguration, LaunchType, NetworkConfiguration, NetworkMode,
};

use crate::proxy::{Call, Config, Fault, Injected, Proxy, round_trip_depth};
use crate::support::aws::Aws;
use crate::support::{REGION, TestStack, moto, random_string};

/// 1/200 of AWS: a 100 s rollout takes 0.5 s.
const SCALE: f64 = 0.005;

fn proxy(config: Config) -> Proxy {
    Proxy::start(&moto().endpoint, config)
}

async fn sdk_config(endpoint: &str, retry: RetryConfig, timeout: TimeoutConfig) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .retry_config(retry)
        .timeout_config(timeout)
        .load()
        .await
}

/// Clients that make exactly one attempt per call, so a test sees each injected error.
async fn single_attempt(endpoint: &str) -> SdkConfig {
    sdk_config(endpoint, RetryConfig::disabled(), TimeoutConfig::disabled()).await
}

fn ops(calls: &[Call]) -> Vec<(String, String)> {
    calls
        .iter()
        .map(|c| (c.service.clone(), c.operation.clone()))
        .collect()
}

fn pair(service: &str, operation: &str) -> (String, String) {
    (service.to_owned(), operation.to_owned())
}

/// Calls `attempt` until it returns Some, at most for `within`; the test fails after that.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = attempt().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A VPC of its own for one test (moto does not mind overlapping VPC CIDRs; subnets are per VPC).
async fn vpc(aws: &Aws) -> String {
    let out = aws
        .ec2
        .create_vpc()
        .cidr_block("172.31.0.0/16")
        .send()
        .await;
    out.expect("CreateVpc")
        .vpc
        .and_then(|v| v.vpc_id)
        .expect("vpc id")
}

async fn subnet(aws: &Aws, vpc: &str) -> String {
    let out = aws
        .ec2
        .create_subnet()
        .vpc_id(vpc)
        .cidr_block("172.31.1.0/24")
        .send()
        .await;
    out.expect("CreateSubnet")
        .subnet
        .and_then(|s| s.subnet_id)
        .expect("subnet id")
}

fn unique(label: &str) -> String {
    format!(
        "proxy-{label}-{}",
        random_string(b"abcdefghijklmnopqrstuvwxyz", 6)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn call_log_names_each_operation_in_order() {
    let proxy = proxy(Config::passthrough());
    let aws = Aws::for_endpoint(proxy.endpoint()).await;

    aws.ec2.describe_vpcs().send().await.expect("DescribeVpcs");
    aws.ecs.list_clusters().send().await.expect("ListClusters");
    aws.iam.list_roles().send().await.expect("ListRoles");
    aws.secrets
        .list_secrets()
        .send()
        .await
        .expect("ListSecrets");
    aws.sd
        .list_namespaces()
        .send()
        .await
        .expect("ListNamespaces");
    aws.logs
        .describe_log_groups()
        .send()
        .await
        .expect("DescribeLogGroups");

    let calls = proxy.calls();
    assert_eq!(
        ops(&calls),
        [
            pair("ec2", "DescribeVpcs"),
            pair("ecs", "ListClusters"),
            pair("iam", "ListRoles"),
            pair("secretsmanager", "ListSecrets"),
            pair("servicediscovery", "ListNamespaces"),
            pair("logs", "DescribeLogGroups"),
        ]
    );
    assert!(
        calls
            .iter()
            .all(|c| c.status == Some(200) && c.injected.is_none() && c.start <= c.end),
        "{calls:#?}"
    );
    assert_eq!(
        round_trip_depth(&calls),
        calls.len(),
        "one call after the other"
    );

    // moto's own API is the test's back door: forwarded, never logged.
    let client = http_get_head(&format!("{}/moto-api/config", proxy.endpoint())).await;
    assert!(client.starts_with("HTTP/1.1 2"), "{client}");
    proxy.reset_log();
    assert_eq!(proxy.calls(), []);
}

/// A bare HTTP GET (the SDK cannot call moto's API): the status line and headers.
async fn http_get_head(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_at(rest.find('/').expect("a path"));
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut head = vec![0; 64];
    let n = stream.read(&mut head).await.expect("read");
    String::from_utf8_lossy(&head[..n]).into_owned()
}

#[test]
fn round_trip_depth_counts_overlapping_calls_once() {
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);
    let call = |start, end| Call {
        service: "ec2".into(),
        operation: "DescribeVpcs".into(),
        access_key: "testing".into(),
        address: None,
        moto_status: Some(200),
        start: ms(start),
        end: ms(end),
        status: Some(200),
        injected: None,
        request: Default::default(),
    };
    // Two parallel calls, then one after both, then one that overlaps the third.
    let calls = [call(0, 10), call(1, 12), call(12, 20), call(15, 30)];
    assert_eq!(round_trip_depth(&calls), 2);
    assert_eq!(round_trip_depth(&calls[..1]), 1);
    assert_eq!(round_trip_depth(&[]), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_call_takes_at_least_its_latency() {
    let (base, slow) = (Duration::from_millis(150), Duration::from_millis(400));
    let proxy = proxy(
        Config::passthrough()
            .with_latency(base)
            .with_operation_latency("DescribeSubnets", slow),
    );
    let aws = Aws::for_endpoint(proxy.endpoint()).await;

    let t = Instant::now();
    aws.ec2.describe_vpcs().send().await.expect("DescribeVpcs");
    assert!(t.elapsed() >= base, "{:?}", t.elapsed());
    let t = Instant::now();
    aws.ec2
        .describe_subnets()
        .send()
        .await
        .expect("DescribeSubnets");
    assert!(t.elapsed() >= slow, "{:?}", t.elapsed());

    let calls = proxy.calls();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert!(calls[0].end - calls[0].start >= base, "{calls:#?}");
    assert!(calls[1].end - calls[1].start >= slow, "{calls:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn nat_gateway_is_pending_then_available_and_holds_the_internet_gateway_until_deleted() {
    let mut config = Config::realistic(1, SCALE);
    // Deleting lasts 2 s, not 0.3: on a loaded machine the next call must still see it.
    config.timings.nat_delete = crate::proxy::model::Span::fixed(Duration::from_secs(2));
    let proxy = proxy(config);
    let aws = Aws::for_endpoint(proxy.endpoint()).await;
    let vpc = vpc(&aws).await;
    let subnet = subnet(&aws, &vpc).await;
    let igw = aws.ec2.create_internet_gateway().send().await;
    let igw = igw
        .expect("CreateInternetGateway")
        .internet_gateway
        .and_then(|g| g.internet_gateway_id)
        .expect("igw id");
    let attach = aws
        .ec2
        .attach_internet_gateway()
        .internet_gateway_id(&igw)
        .vpc_id(&vpc);
    attach.send().await.expect("AttachInternetGateway");
    let eip = aws
        .ec2
        .allocate_address()
        .domain(DomainType::Vpc)
        .send()
        .await;
    let eip = eip
        .expect("AllocateAddress")
        .allocation_id
        .expect("allocation id");

    let created = aws
        .ec2
        .create_nat_gateway()
        .subnet_id(&subnet)
        .allocation_id(&eip)
        .send()
        .await
        .expect("CreateNatGateway")
        .nat_gateway
        .expect("NAT");
    assert_eq!(created.state(), Some(&NatGatewayState::Pending));
    let nat = created.nat_gateway_id().expect("NAT id").to_owned();
    let state = || async {
        let out = aws
            .ec2
            .describe_nat_gateways()
            .nat_gateway_ids(&nat)
            .send()
            .await;
        let out = out.expect("DescribeNatGateways");
        out.nat_gateways()[0].state().cloned().expect("state")
    };
    assert_eq!(state().await, NatGatewayState::Pending);
    eventually("NAT available", Duration::from_secs(10), || async {
        (state().await == NatGatewayState::Available).then_some(())
    })
    .await;

    let detach = || {
        aws.ec2
            .detach_internet_gateway()
            .internet_gateway_id(&igw)
            .vpc_id(&vpc)
            .send()
    };
    let err = detach()
        .await
        .expect_err("detach with the NAT's address mapped");
    assert_eq!(err.code(), Some("DependencyViolation"), "{err:?}");

    let delete = aws
        .ec2
        .delete_nat_gateway()
        .nat_gateway_id(&nat)
        .send()
        .await;
    delete.expect("DeleteNatGateway");
    assert_eq!(state().await, NatGatewayState::Deleting);
    let err = detach()
        .await
        .expect_err("detach while the NAT is deleting");
    assert_eq!(err.code(), Some("DependencyViolation"), "{err:?}");
    eventually("NAT deleted", Duration::from_secs(10), || async {
        (state().await == NatGatewayState::Deleted).then_some(())
    })
    .await;
    detach().await.expect("detach once the NAT is deleted");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_nat_gateway_ends_failed_with_a_reason_and_is_deleted_at_once() {
    let proxy = proxy(Config::realistic(3, SCALE).with_failing_nats(1));
    let aws = Aws::for_endpoint(proxy.endpoint()).await;
    let vpc = vpc(&aws).await;
    let subnet = subnet(&aws, &vpc).await;
    let eip = aws
        .ec2
        .allocate_address()
        .domain(DomainType::Vpc)
        .send()
        .await;
    let eip = eip
        .expect("AllocateAddress")
        .allocation_id
        .expect("allocation id");
    let create = || async {
        let out = aws
            .ec2
            .create_nat_gateway()
            .subnet_id(&subnet)
            .allocation_id(&eip)
            .send()
            .await;
        let nat = out.expect("CreateNatGateway").nat_gateway.expect("NAT");
        assert_eq!(nat.state(), Some(&NatGatewayState::Pending));
        nat.nat_gateway_id.expect("NAT id")
    };
    let describe = |id: String| {
        let aws = &aws;
        async move {
            let out = aws
                .ec2
                .describe_nat_gateways()
                .nat_gateway_ids(id)
                .send()
                .await;
            out.expect("DescribeNatGateways").nat_gateways()[0].clone()
        }
    };

    // Only the first NAT fails; it goes through `pending` like any other.
    let failing = create().await;
    let failed = eventually("NAT failed", Duration::from_secs(10), || async {
        let nat = describe(failing.clone()).await;
        (nat.state() == Some(&NatGatewayState::Failed)).then_some(nat)
    })
    .await;
    assert_eq!(failed.failure_code(), Some("Gateway.NotAttached"));
    assert_eq!(
        failed.failure_message(),
        Some(format!("Network {vpc} has no Internet gateway attached").as_str())
    );

    // A failed NAT holds no address: its EIP goes to the next NAT while it is still listed.
    let healthy = create().await;
    eventually("second NAT available", Duration::from_secs(10), || async {
        let nat = describe(healthy.clone()).await;
        (nat.state() == Some(&NatGatewayState::Available)).then_some(())
    })
    .await;
    assert_eq!(describe(healthy).await.failure_code(), None);

    // Nothing to release: no `deleting` in between.
    let delete = aws
        .ec2
        .delete_nat_gateway()
        .nat_gateway_id(&failing)
        .send()
        .await;
    delete.expect("DeleteNatGateway of a failed NAT");
    let nat = describe(failing).await;
    assert_eq!(nat.state(), Some(&NatGatewayState::Deleted));
}

/// A cluster, a task definition and the network for one Fargate service.
struct EcsSetup {
    cluster: String,
    family: String,
    subnet: String,
    security_group: String,
}

async fn ecs_setup(aws: &Aws, label: &str) -> EcsSetup {
    let vpc = vpc(aws).await;
    let subnet = subnet(aws, &vpc).await;
    let sg = aws
        .ec2
        .create_security_group()
        .group_name(unique(label))
        .description("proxy test")
        .vpc_id(&vpc)
        .send()
        .await;
    let security_group = sg.expect("CreateSecurityGroup").group_id.expect("sg id");
    let cluster = unique(label);
    let out = aws.ecs.create_cluster().cluster_name(&cluster).send().await;
    out.expect("CreateCluster");
    let family = unique(label);
    let container = ContainerDefinition::builder()
        .name("worker")
        .image("prefecthq/prefect:3-python3.12")
        .build();
    aws.ecs
        .register_task_definition()
        .family(&family)
        .network_mode(NetworkMode::Awsvpc)
        .requires_compatibilities(Compatibility::Fargate)
        .cpu("256")
        .memory("512")
        .container_definitions(container)
        .send()
        .await
        .expect("RegisterTaskDefinition");
    EcsSetup {
        cluster,
        family,
        subnet,
        security_group,
    }
}

impl EcsSetup {
    fn create_service(
        &self,
        aws: &Aws,
        name: &str,
    ) -> aws_sdk_ecs::operation::create_service::builders::CreateServiceFluentBuilder {
        let vpc = AwsVpcConfiguration::builder()
            .subnets(&self.subnet)
            .security_groups(&self.security_group)
            .build()
            .expect("awsvpc configuration");
        aws.ecs
            .create_service()
            .cluster(&self.cluster)
            .service_name(name)
            .task_definition(&self.family)
            .desired_count(2)
            .launch_type(LaunchType::Fargate)
            .network_configuration(
                NetworkConfiguration::builder()
                    .awsvpc_configuration(vpc)
                    .build(),
            )
    }

    async fn describe(&self, aws: &Aws, name: &str) -> aws_sdk_ecs::types::Service {
        let out = aws
            .ecs
            .describe_services()
            .cluster(&self.cluster)
            .services(name)
            .send()
            .await
            .expect("DescribeServices");
        out.services()[0].clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ecs_service_rolls_out_and_keeps_the_fields_moto_drops() {
    let proxy = proxy(Config::realistic(2, SCALE));
    let aws = Aws::for_endpoint(proxy.endpoint()).await;
    let setup = ecs_setup(&aws, "rollout").await;
    let breaker = DeploymentCircuitBreaker::builder()
        .enable(true)
        .rollback(true)
        .build();
    let deployment = DeploymentConfiguration::builder()
        .deployment_circuit_breaker(breaker)
        .maximum_percent(200)
        .minimum_healthy_percent(100)
        .build();

    let created = setup
        .create_service(&aws, "svc")
        .deployment_configuration(deployment.clone())
        .enable_execute_command(true)
        .enable_ecs_managed_tags(true)
        .send()
        .await
        .expect("CreateService")
        .service
        .expect("service");
    let shown = setup.describe(&aws, "svc").await;
    for s in [&created, &shown] {
        assert_eq!(s.deployment_configuration(), Some(&deployment), "{s:#?}");
        assert!(s.enable_execute_command(), "{s:#?}");
        assert!(s.enable_ecs_managed_tags(), "{s:#?}");
    }
    let primary = |s: &aws_sdk_ecs::types::Service| {
        let d = s
            .deployments()
            .iter()
            .find(|d| d.status() == Some("PRIMARY"));
        d.expect("a PRIMARY deployment").clone()
    };
    assert!(shown.running_count() < shown.desired_count(), "{shown:#?}");
    assert_eq!(
        primary(&shown).rollout_state().map(|r| r.as_str()),
        Some("IN_PROGRESS")
    );

    let stable = eventually("rollout completed", Duration::from_secs(10), || async {
        let s = setup.describe(&aws, "svc").await;
        (primary(&s).rollout_state().map(|r| r.as_str()) == Some("COMPLETED")).then_some(s)
    })
    .await;
    assert_eq!(stable.running_count(), 2, "{stable:#?}");
    assert_eq!(primary(&stable).running_count(), 2, "{stable:#?}");
    assert_eq!(stable.deployment_configuration(), Some(&deployment));

    // An update starts a new rollout; what it does not mention stays as it was.
    let updated = aws
        .ecs
        .update_service()
        .cluster(&setup.cluster)
        .service("svc")
        .enable_execute_command(false)
        .send()
        .await
        .expect("UpdateService")
        .service
        .expect("service");
    assert!(!updated.enable_execute_command());
    assert_eq!(updated.deployment_configuration(), Some(&deployment));
    assert_eq!(
        primary(&updated).rollout_state().map(|r| r.as_str()),
        Some("IN_PROGRESS")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_service_drains_and_its_enis_hold_subnet_and_security_group() {
    let proxy = proxy(Config::realistic(3, SCALE));
    let aws = Aws::for_endpoint(proxy.endpoint()).await;
    let setup = ecs_setup(&aws, "drain").await;
    setup
        .create_service(&aws, "svc")
        .send()
        .await
        .expect("CreateService");

    let deleted = aws
        .ecs
        .delete_service()
        .cluster(&setup.cluster)
        .service("svc")
        .force(true)
        .send()
        .await
        .expect("DeleteService");
    assert_eq!(
        deleted.service.and_then(|s| s.status),
        Some("DRAINING".into())
    );
    assert_eq!(setup.describe(&aws, "svc").await.status(), Some("DRAINING"));

    let err = setup
        .create_service(&aws, "svc")
        .send()
        .await
        .expect_err("re-create while draining");
    assert_eq!(err.code(), Some("InvalidParameterException"), "{err:?}");
    assert_eq!(
        err.message(),
        Some("Creation of service was not idempotent.")
    );

    let delete_subnet = || aws.ec2.delete_subnet().subnet_id(&setup.subnet).send();
    let delete_sg = || {
        aws.ec2
            .delete_security_group()
            .group_id(&setup.security_group)
            .send()
    };
    let err = delete_subnet()
        .await
        .expect_err("subnet held by lingering ENIs");
    assert_eq!(err.code(), Some("DependencyViolation"), "{err:?}");
    let err = delete_sg().await.expect_err("SG held by lingering ENIs");
    assert_eq!(err.code(), Some("DependencyViolation"), "{err:?}");

    eventually("service INACTIVE", Duration::from_secs(10), || async {
        let s = setup.describe(&aws, "svc").await;
        (s.status() == Some("INACTIVE")).then_some(())
    })
    .await;
    let again = setup.create_service(&aws, "svc").send().await;
    again.expect("re-create once drained");
    // The new service's tasks do not free the old tasks' ENIs any sooner.
    eventually("subnet released", Duration::from_secs(10), || async {
        delete_subnet().await.ok()
    })
    .await;
    delete_sg().await.expect("SG released with the subnet");

    let refused: Vec<_> = proxy
        .calls()
        .into_iter()
        .filter_map(|c| match c.injected {
            Some(Injected::Refused(code)) => Some((c.operation, code)),
            _ => None,
        })
        .collect();
    assert!(
        refused.contains(&("DeleteSubnet".into(), "DependencyViolation")),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cloud_map_operations_are_pending_and_a_namespace_with_services_stays() {
    let proxy = proxy(Config::realistic(4, SCALE));
    let aws = Aws::for_endpoint(proxy.endpoint()).await;
    let vpc = vpc(&aws).await;
    let out = aws
        .sd
        .create_private_dns_namespace()
        .name(format!("{}.local", unique("ns")))
        .vpc(&vpc)
        .send()
        .await;
    let operation = out
        .expect("CreatePrivateDnsNamespace")
        .operation_id
        .expect("operation id");
    let get = || async {
        let out = aws.sd.get_operation().operation_id(&operation).send().await;
        out.expect("GetOperation").operation.expect("operation")
    };
    let first = get().await;
    let status = first.status().map(|s| s.as_str().to_owned());
    assert!(
        matches!(status.as_deref(), Some("SUBMITTED" | "PENDING")),
        "{first:?}"
    );
    let done = eventually("namespace created", Duration::from_secs(10), || async {
        let op = get().await;
        (op.status().map(|s| s.as_str()) == Some("SUCCESS")).then_some(op)
    })
    .await;
    let namespace = done
        .targets()
        .and_then(|t| t.get(&aws_sdk_servicediscovery::types::OperationTargetType::Namespace))
        .expect("namespace id")
        .clone();

    let out = aws
        .sd
        .create_service()
        .name("worker")
        .namespace_id(&namespace)
        .send()
        .await;
    let service = out
        .expect("CreateService")
        .service
        .and_then(|s| s.id)
        .expect("service id");
    let err = aws.sd.delete_namespace().id(&namespace).send().await;
    let err = err.expect_err("namespace with a service");
    assert_eq!(err.code(), Some("ResourceInUse"), "{err:?}");
    aws.sd
        .delete_service()
        .id(&service)
        .send()
        .await
        .expect("DeleteService");
    aws.sd
        .delete_namespace()
        .id(&namespace)
        .send()
        .await
        .expect("DeleteNamespace");
}

#[tokio::test(flavor = "multi_thread")]
async fn force_deleted_secret_name_is_reusable_only_after_a_while() {
    let proxy = proxy(Config::realistic(5, SCALE));
    let aws = Aws::for_endpoint(proxy.endpoint()).await;
    let name = unique("secret");
    let create = || {
        aws.secrets
            .create_secret()
            .name(&name)
            .secret_string("v")
            .send()
    };
    create().await.expect("CreateSecret");
    let delete = aws
        .secrets
        .delete_secret()
        .secret_id(&name)
        .force_delete_without_recovery(true)
        .send()
        .await;
    delete.expect("DeleteSecret");

    let err = create().await.expect_err("name still being released");
    assert_eq!(err.code(), Some("InvalidRequestException"), "{err:?}");
    assert!(
        err.message()
            .is_some_and(|m| m.contains("already scheduled for deletion")),
        "{err:?}"
    );
    eventually("secret name released", Duration::from_secs(10), || async {
        create().await.ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_queue_name_is_reusable_only_after_a_minute() {
    let proxy = proxy(Config::realistic(6, SCALE));
    let aws = Aws::for_endpoint(proxy.endpoint()).await;
    let name = unique("queue");
    let create = || aws.sqs.create_queue().queue_name(&name).send();
    let url = create()
        .await
        .expect("CreateQueue")
        .queue_url()
        .unwrap()
        .to_owned();
    aws.sqs
        .delete_queue()
        .queue_url(&url)
        .send()
        .await
        .expect("DeleteQueue");

    let err = create().await.expect_err("name deleted recently");
    assert_eq!(
        err.code(),
        Some("AWS.SimpleQueueService.QueueDeletedRecently"),
        "{err:?}"
    );
    eventually("queue name released", Duration::from_secs(10), || async {
        create().await.ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ecs_refuses_a_new_role_in_task_definitions_until_it_has_propagated() {
    let window = Duration::from_millis(600);
    let proxy = proxy(Config::realistic(6, SCALE).with_role_propagation(window));
    let aws = Aws::for_endpoint(proxy.endpoint()).await;
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let created = Instant::now();
    let role = aws
        .iam
        .create_role()
        .role_name(unique("role"))
        .assume_role_policy_document(trust)
        .send()
        .await;
    let arn = role.expect("CreateRole").role.expect("role").arn;
    let register = || {
        let container = ContainerDefinition::builder()
            .name("worker")
            .image("prefecthq/prefect:3-python3.12")
            .build();
        aws.ecs
            .register_task_definition()
            .family(unique("role"))
            .network_mode(NetworkMode::Awsvpc)
            .requires_compatibilities(Compatibility::Fargate)
            .cpu("256")
            .memory("512")
            .execution_role_arn(&arn)
            .container_definitions(container)
            .send()
    };

    let err = register().await.expect_err("a role ECS does not see yet");
    assert_eq!(err.code(), Some("ClientException"), "{err:?}");
    assert_eq!(err.message(), Some("Role is not valid"), "{err:?}");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    eventually("role propagated", Duration::from_secs(10), || async {
        register().await.ok()
    })
    .await;
    assert!(created.elapsed() >= window);
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_has_each_services_own_code_and_the_sdk_retries_it() {
    let config = Config::passthrough()
        .with_faults(1.0, &[Fault::Throttle])
        .faults_only_for(&["DescribeVpcs", "ecs:ListClusters", "ListRoles"]);
    let proxy = proxy(config);
    let sdk = single_attempt(proxy.endpoint()).await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let iam = aws_sdk_iam::Client::new(&sdk);

    let err = ec2.describe_vpcs().send().await.expect_err("throttled");
    assert_eq!(err.code(), Some("RequestLimitExceeded"), "{err:?}");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(503));
    let err = ecs.list_clusters().send().await.expect_err("throttled");
    assert_eq!(err.code(), Some("ThrottlingException"), "{err:?}");
    let err = iam.list_roles().send().await.expect_err("throttled");
    assert_eq!(err.code(), Some("Throttling"), "{err:?}");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    // Only the operations named fail.
    ec2.describe_subnets()
        .send()
        .await
        .expect("DescribeSubnets");

    // With the SDK's standard retries, the throttling is classified as retryable: 3 attempts.
    proxy.reset_log();
    let retry = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(1));
    let sdk = sdk_config(proxy.endpoint(), retry, TimeoutConfig::disabled()).await;
    let err = aws_sdk_ecs::Client::new(&sdk).list_clusters().send().await;
    assert_eq!(
        err.expect_err("throttled").code(),
        Some("ThrottlingException")
    );
    let calls = proxy.calls();
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert!(
        calls
            .iter()
            .all(|c| c.injected == Some(Injected::Fault(Fault::Throttle))),
        "{calls:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_drops_the_call_and_slow_answers_after_doing_it() {
    let slow = Duration::from_millis(600);
    let config = Config::passthrough()
        .with_faults(1.0, &[Fault::Reset])
        .faults_only_for(&["ListClusters"]);
    let proxy_reset = proxy(config);
    let sdk = single_attempt(proxy_reset.endpoint()).await;
    let err = aws_sdk_ecs::Client::new(&sdk).list_clusters().send().await;
    let err = err.expect_err("connection dropped");
    assert!(
        err.as_service_error().is_none() && err.raw_response().is_none(),
        "{err:?}"
    );
    let calls = proxy_reset.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].status, None);

    let config = Config::passthrough()
        .with_faults(1.0, &[Fault::Slow(slow)])
        .faults_only_for(&["CreateSecret"]);
    let proxy_slow = proxy(config);
    let attempt = TimeoutConfig::builder()
        .operation_attempt_timeout(Duration::from_millis(100))
        .build();
    let sdk = sdk_config(proxy_slow.endpoint(), RetryConfig::disabled(), attempt).await;
    let name = unique("slow");
    let create = aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(&name)
        .secret_string("v")
        .send()
        .await;
    assert!(create.is_err(), "the attempt timed out: {create:?}");
    // The client gave up, yet AWS (moto) did create it: what a retry must cope with.
    let direct = Aws::new().await;
    let out = direct
        .secrets
        .describe_secret()
        .secret_id(&name)
        .send()
        .await;
    out.expect("the secret exists");
    // The client hung up, so the call is logged without a status once the proxy notices.
    let calls = eventually("the slow call logged", Duration::from_secs(5), || async {
        Some(proxy_slow.calls()).filter(|c| !c.is_empty())
    })
    .await;
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].injected, Some(Injected::Fault(Fault::Slow(slow))));
    assert_eq!(calls[0].status, None, "{calls:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seed_fixes_the_fault_sequence() {
    let kinds = [Fault::Throttle, Fault::InternalError, Fault::Unavailable];
    async fn outcomes(seed: u64, kinds: &[Fault]) -> Vec<Option<u16>> {
        let config = Config::realistic(seed, 0.0).with_faults(0.5, kinds);
        let proxy = proxy(config);
        let ec2 = aws_sdk_ec2::Client::new(&single_attempt(proxy.endpoint()).await);
        let mut seen = Vec::new();
        for _ in 0..24 {
            let out = ec2.describe_vpcs().send().await;
            seen.push(
                out.err()
                    .and_then(|e| e.raw_response().map(|r| r.status().as_u16())),
            );
        }
        let log: Vec<_> = proxy.calls().iter().map(|c| c.status).collect();
        assert_eq!(
            log,
            seen.iter()
                .map(|s| Some(s.unwrap_or(200)))
                .collect::<Vec<_>>()
        );
        seen
    }
    let first = outcomes(42, &kinds).await;
    assert_eq!(outcomes(42, &kinds).await, first, "same seed, same faults");
    assert_ne!(
        outcomes(43, &kinds).await,
        first,
        "another seed, other faults"
    );
    let failed = first.iter().filter(|s| s.is_some()).count();
    assert!(
        (4..=20).contains(&failed),
        "about half of 24 fail: {first:?}"
    );
    for status in [500, 503] {
        assert!(first.contains(&Some(status)), "{status} among {first:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_runs_through_the_proxy() {
    let proxy = proxy(Config::passthrough());
    let stack = TestStack::new("proxied");
    let env = [("AWS_ENDPOINT_URL", proxy.endpoint())];
    let out = tokio::task::block_in_place(|| stack.run(&["plan"], &env)).assert_ok();
    let calls = proxy.calls();
    for (service, operation) in [("ec2", "DescribeVpcs"), ("ecs", "DescribeClusters")] {
        assert!(
            ops(&calls).contains(&pair(service, operation)),
            "{service} {operation} not among {:?}\n{out}",
            ops(&calls)
        );
    }
    assert!(round_trip_depth(&calls) >= 1);
}
