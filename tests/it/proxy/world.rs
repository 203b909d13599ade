//! The asynchronous side of AWS that moto skips, kept beside moto's state: what is still pending,
//! draining or lingering, and for how long. It refuses calls AWS would refuse at that moment and
//! rewrites moto's answers to show the states AWS would show.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::config::{Config, Dice};
use super::model::{Span, Timings};
use super::wire::{AwsError, Op};

/// A change that started at `start` and is over at `end`.
#[derive(Debug, Clone, Copy)]
struct Pending {
    start: Instant,
    end: Instant,
}

impl Pending {
    fn new(now: Instant, takes: Duration) -> Self {
        Pending {
            start: now,
            end: now + takes,
        }
    }

    fn done(self, now: Instant) -> bool {
        now >= self.end
    }

    /// How far along the change is, in `[0, 1]`.
    fn progress(self, now: Instant) -> f64 {
        let total = (self.end - self.start).as_secs_f64();
        if total == 0.0 {
            return 1.0;
        }
        (now.saturating_duration_since(self.start).as_secs_f64() / total).min(1.0)
    }
}

#[derive(Debug)]
struct Nat {
    /// Unknown for a NAT created before this proxy started.
    vpc: Option<String>,
    /// When `pending` ends: `available`, or `failed` for a failing NAT.
    available: Instant,
    /// A NAT the configuration made fail.
    failure: Option<NatFailure>,
    /// When `deleting` turns into `deleted`.
    deleted: Option<Instant>,
}

#[derive(Debug)]
struct NatFailure {
    /// AWS's `failureMessage`.
    message: String,
    /// The public IP of its EIP, until moto has been told to free it.
    address: Option<String>,
}

impl Nat {
    fn failed(&self, now: Instant) -> bool {
        self.failure.is_some() && now >= self.available
    }

    /// Its EIP is still mapped, which blocks detaching the VPC's internet gateway. A failed NAT
    /// never mapped it.
    fn maps_address(&self, now: Instant) -> bool {
        !self.failed(now) && self.deleted.is_none_or(|d| now < d)
    }
}

/// An interface endpoint created through the proxy (a gateway endpoint is available at once,
/// as in AWS).
#[derive(Debug)]
struct Endpoint {
    /// When `pending` turns into `available`.
    available: Instant,
    /// When `deleting` turns into `deleted`.
    deleted: Option<Instant>,
    /// Its ENIs' subnets and security groups, which they hold until a while after it is gone.
    holds: Vec<String>,
}

/// An ECS service as far as the proxy has seen it.
#[derive(Debug, Default)]
struct EcsService {
    /// The latest deployment (CreateService, UpdateService).
    rollout: Option<Pending>,
    /// After DeleteService: when `DRAINING` turns into `INACTIVE`.
    drained: Option<Instant>,
    /// Request fields moto drops, given back in every answer.
    echo: Map<String, Value>,
}

/// ECS service fields moto accepts and then forgets.
const ECHOED: [&str; 3] = [
    "deploymentConfiguration",
    "enableExecuteCommand",
    "enableECSManagedTags",
];

#[derive(Debug)]
pub(super) struct World {
    timings: Timings,
    /// Off: moto's answers go through untouched (the passthrough proxy).
    realism: bool,
    pub(super) dice: Dice,
    nats: HashMap<String, Nat>,
    /// Interface endpoints by id.
    endpoints: HashMap<String, Endpoint>,
    /// Cloud Map operations by id.
    operations: HashMap<String, Pending>,
    /// Cloud Map services created through the proxy: id → namespace id.
    discovery_services: HashMap<String, String>,
    /// By (cluster name, service name).
    services: HashMap<(String, String), EcsService>,
    /// Task ENIs of deleted services: until when, and the subnets and security groups they hold
    /// (a re-created service of the same name does not free them).
    lingering_enis: Vec<(Instant, Vec<String>)>,
    /// Force-deleted secret names, and when each can be used again.
    released_secrets: HashMap<String, Instant>,
    /// Deleted SQS queue names, and when each can be used again.
    released_queues: HashMap<String, Instant>,
    /// How many of the next NATs created fail (`Config::failing_nats`).
    failing_nats: u32,
    /// How long ECS refuses a new role (`Config::role_propagation`).
    role_propagation: Duration,
    /// IAM roles created through the proxy, by name: when ECS starts accepting each.
    new_roles: HashMap<String, Instant>,
}

impl World {
    pub(super) fn new(config: &Config) -> Self {
        World {
            timings: config.timings,
            realism: config.realism,
            dice: Dice::new(config.seed),
            nats: HashMap::new(),
            endpoints: HashMap::new(),
            operations: HashMap::new(),
            discovery_services: HashMap::new(),
            services: HashMap::new(),
            lingering_enis: Vec::new(),
            released_secrets: HashMap::new(),
            released_queues: HashMap::new(),
            failing_nats: config.failing_nats,
            role_propagation: config.role_propagation,
            new_roles: HashMap::new(),
        }
    }

    fn draw(&mut self, what: &str, span: Span) -> Duration {
        self.dice.span(what, span)
    }

    /// The error AWS would answer `op` with now, where moto would accept it.
    pub(super) fn refuse(&self, op: &Op, now: Instant) -> Option<AwsError> {
        if !self.realism {
            return None;
        }
        // A deleted service's task ENIs, and an interface endpoint's ENIs from its create
        // until a while after it is deleted.
        let held_by_enis = |id: &str| {
            let lingering = self
                .lingering_enis
                .iter()
                .any(|(until, ids)| now < *until && ids.iter().any(|i| i == id));
            let endpoint = self
                .endpoints
                .values()
                .any(|e| e.deleted.is_none() && e.holds.iter().any(|i| i == id));
            lingering || endpoint
        };
        match (op.service.as_str(), op.operation.as_str()) {
            ("ec2", "DeleteSubnet") => {
                let id = op.param("SubnetId")?;
                held_by_enis(id).then(|| {
                    AwsError::new(
                        400,
                        "DependencyViolation",
                        format!("The subnet '{id}' has dependencies and cannot be deleted."),
                    )
                })
            }
            ("ec2", "DeleteSecurityGroup") => {
                let id = op.param("GroupId")?;
                held_by_enis(id).then(|| {
                    AwsError::new(
                        400,
                        "DependencyViolation",
                        format!("resource {id} has a dependent object"),
                    )
                })
            }
            ("ec2", "DetachInternetGateway") => {
                let vpc = op.param("VpcId")?;
                let mapped = self
                    .nats
                    .values()
                    .any(|n| n.vpc.as_deref() == Some(vpc) && n.maps_address(now));
                mapped.then(|| {
                    AwsError::new(
                        400,
                        "DependencyViolation",
                        format!(
                            "Network {vpc} has some mapped public address(es). Please unmap \
                             those public address(es) before detaching the gateway."
                        ),
                    )
                })
            }
            ("servicediscovery", "DeleteNamespace") => {
                let id = op.param("Id")?;
                let used = self.discovery_services.values().any(|ns| ns == id);
                used.then(|| {
                    AwsError::new(
                        400,
                        "ResourceInUse",
                        format!("Namespace {id} has associated services."),
                    )
                })
            }
            ("secretsmanager", "CreateSecret") => {
                let name = op.param("Name")?;
                let releasing = self.released_secrets.get(name).is_some_and(|t| now < *t);
                releasing.then(|| {
                    AwsError::new(
                        400,
                        "InvalidRequestException",
                        "You can't create this secret because a secret with this name is \
                         already scheduled for deletion.",
                    )
                })
            }
            ("sqs", "CreateQueue") => {
                let name = op.param("QueueName")?;
                let releasing = self.released_queues.get(name).is_some_and(|t| now < *t);
                releasing.then(|| {
                    AwsError::new(
                        400,
                        "AWS.SimpleQueueService.QueueDeletedRecently",
                        "You must wait 60 seconds after deleting a queue before you can create \
                         another with the same name.",
                    )
                })
            }
            ("ecs", "RegisterTaskDefinition") => {
                let request = op.json()?;
                let unknown = ["executionRoleArn", "taskRoleArn"]
                    .iter()
                    .filter_map(|field| request[field].as_str())
                    .any(|role| {
                        // An ARN (`arn:aws:iam::1:role/path/name`) or a bare name.
                        let name = role.rsplit('/').next().unwrap_or(role);
                        self.new_roles.get(name).is_some_and(|t| now < *t)
                    });
                unknown.then(|| AwsError::new(400, "ClientException", "Role is not valid"))
            }
            ("ecs", "CreateService") => {
                let key = (
                    cluster_name(op.param("cluster")),
                    op.param("serviceName")?.into(),
                );
                let draining = self
                    .services
                    .get(&key)
                    .and_then(|s| s.drained)
                    .is_some_and(|t| now < t);
                draining.then(|| {
                    AwsError::new(
                        400,
                        "InvalidParameterException",
                        "Creation of service was not idempotent.",
                    )
                })
            }
            _ => None,
        }
    }

    /// The public IPs of NATs that have failed by now and whose EIP moto still holds: AWS frees
    /// a failed NAT's EIP (it can be given to a new NAT at once), moto frees it only when told.
    /// Each address is returned once.
    pub(super) fn addresses_to_free(&mut self, now: Instant) -> Vec<String> {
        self.nats
            .values_mut()
            .filter(|n| n.failed(now))
            .filter_map(|n| n.failure.as_mut()?.address.take())
            .collect()
    }

    /// Records what moto's successful answer to `op` started, and returns the answer as AWS
    /// would give it now.
    pub(super) fn observe(&mut self, op: &Op, now: Instant, status: u16, body: Vec<u8>) -> Vec<u8> {
        if !self.realism || status != 200 {
            return body;
        }
        match op.service.as_str() {
            "ec2" => match String::from_utf8(body) {
                Ok(xml) => self.observe_ec2(op, now, xml).into_bytes(),
                Err(e) => e.into_bytes(),
            },
            "ecs" | "servicediscovery" | "secretsmanager" => {
                let Ok(mut json) = serde_json::from_slice::<Value>(&body) else {
                    return body;
                };
                match op.service.as_str() {
                    "ecs" => self.observe_ecs(op, now, &mut json),
                    "servicediscovery" => self.observe_discovery(op, now, &mut json),
                    _ => self.observe_secrets(op, now, &json),
                }
                serde_json::to_vec(&json).expect("a JSON value serializes")
            }
            "iam" => {
                if op.operation == "CreateRole"
                    && let Some(name) = op.param("RoleName")
                {
                    self.new_roles
                        .insert(name.to_owned(), now + self.role_propagation);
                }
                body
            }
            "sqs" => {
                if op.operation == "DeleteQueue"
                    && let Some(name) = op.param("QueueUrl").and_then(|u| u.rsplit('/').next())
                {
                    let takes = self.draw("queue_name_release", self.timings.queue_name_release);
                    self.released_queues.insert(name.to_owned(), now + takes);
                }
                body
            }
            _ => body,
        }
    }

    fn observe_ec2(&mut self, op: &Op, now: Instant, xml: String) -> String {
        match op.operation.as_str() {
            "CreateNatGateway" => {
                if let Some(id) = xml_text(&xml, "natGatewayId") {
                    let available = now + self.draw("nat_create", self.timings.nat_create);
                    let vpc = xml_text(&xml, "vpcId").map(str::to_owned);
                    // AWS's message when the VPC has no internet gateway, the commonest cause.
                    let failure = (self.failing_nats > 0).then(|| {
                        self.failing_nats -= 1;
                        let network = vpc.as_deref().unwrap_or("vpc-unknown");
                        NatFailure {
                            message: format!("Network {network} has no Internet gateway attached"),
                            address: xml_text(&xml, "publicIp").map(str::to_owned),
                        }
                    });
                    let nat = Nat {
                        vpc,
                        available,
                        failure,
                        deleted: None,
                    };
                    self.nats.insert(id.to_owned(), nat);
                }
                self.rewrite_nat_states(&xml, now)
            }
            "DescribeNatGateways" => self.rewrite_nat_states(&xml, now),
            "CreateVpcEndpoint" => {
                let interface = op.param("VpcEndpointType") == Some("Interface");
                if let (true, Some(id)) = (interface, xml_text(&xml, "vpcEndpointId")) {
                    let takes = self.draw("endpoint_create", self.timings.endpoint_create);
                    let holds = op
                        .param_list("SubnetId")
                        .into_iter()
                        .chain(op.param_list("SecurityGroupId"))
                        .map(str::to_owned)
                        .collect();
                    let endpoint = Endpoint {
                        available: now + takes,
                        deleted: None,
                        holds,
                    };
                    self.endpoints.insert(id.to_owned(), endpoint);
                }
                self.rewrite_endpoint_states(&xml, now)
            }
            "DescribeVpcEndpoints" => self.rewrite_endpoint_states(&xml, now),
            "DeleteVpcEndpoints" => {
                for id in op.param_list("VpcEndpointId") {
                    let takes = self.draw("endpoint_delete", self.timings.endpoint_delete);
                    let linger = self.draw("eni_linger", self.timings.eni_linger);
                    if let Some(e) = self.endpoints.get_mut(id)
                        && e.deleted.is_none()
                    {
                        e.deleted = Some(now + takes);
                        self.lingering_enis
                            .push((now + takes + linger, e.holds.clone()));
                    }
                }
                xml
            }
            "DeleteNatGateway" => {
                let id = xml_text(&xml, "natGatewayId").or(op.param("NatGatewayId"));
                if let Some(id) = id {
                    let takes = self.draw("nat_delete", self.timings.nat_delete);
                    let nat = self.nats.entry(id.to_owned()).or_insert(Nat {
                        vpc: None,
                        available: now,
                        failure: None,
                        deleted: None,
                    });
                    // A failed NAT has nothing to release: it is gone at once.
                    let gone = if nat.failed(now) { now } else { now + takes };
                    nat.deleted.get_or_insert(gone);
                }
                xml
            }
            _ => xml,
        }
    }

    /// Sets each NAT's `<state>` (which follows its `<natGatewayId>` in moto's XML) to the state
    /// AWS would show now, followed by `<failureCode>` and `<failureMessage>` for a failed one.
    fn rewrite_nat_states(&self, xml: &str, now: Instant) -> String {
        rewrite_states(xml, "natGatewayId", |id, moto_state| {
            let state = self.nat_state(id, moto_state, now);
            let failure = self.nats.get(id).and_then(|n| n.failure.as_ref());
            let extra = match failure {
                Some(f) if state == "failed" => format!(
                    "<failureCode>Gateway.NotAttached</failureCode><failureMessage>{}</failureMessage>",
                    f.message
                ),
                _ => String::new(),
            };
            (state.to_owned(), extra)
        })
    }

    /// Each interface endpoint's `<state>` as AWS would show it now: `pending` for the minutes
    /// its ENIs and DNS take, `deleting` after a delete, then `deleted`.
    fn rewrite_endpoint_states(&self, xml: &str, now: Instant) -> String {
        rewrite_states(xml, "vpcEndpointId", |id, moto_state| {
            let state = match self.endpoints.get(id) {
                Some(Endpoint {
                    deleted: Some(d), ..
                }) if now < *d => "deleting",
                Some(Endpoint {
                    deleted: Some(_), ..
                }) => "deleted",
                Some(e) if now < e.available => "pending",
                _ => moto_state,
            };
            (state.to_owned(), String::new())
        })
    }

    fn nat_state<'a>(&self, id: &str, moto_state: &'a str, now: Instant) -> &'a str {
        match self.nats.get(id) {
            Some(Nat {
                deleted: Some(d), ..
            }) => {
                if now < *d {
                    "deleting"
                } else {
                    "deleted"
                }
            }
            Some(nat) if now < nat.available => "pending",
            Some(nat) if nat.failed(now) => "failed",
            _ => moto_state,
        }
    }

    fn observe_ecs(&mut self, op: &Op, now: Instant, json: &mut Value) {
        match op.operation.as_str() {
            "CreateService" | "UpdateService" => {
                let Some(key) = service_key(&json["service"]) else {
                    return;
                };
                let takes = self.draw("service_rollout", self.timings.service_rollout);
                let service = self.services.entry(key).or_default();
                if op.operation == "CreateService" {
                    // A name re-used after its drain: nothing of the old service applies.
                    *service = EcsService::default();
                }
                service.rollout = Some(Pending::new(now, takes));
                let request = op.json().and_then(Value::as_object);
                for field in ECHOED {
                    if let Some(v) = request.and_then(|r| r.get(field)) {
                        service.echo.insert(field.to_owned(), v.clone());
                    }
                }
                show_service(&mut json["service"], service, now);
            }
            "DeleteService" => {
                let Some(key) = service_key(&json["service"]) else {
                    return;
                };
                let drain = self.draw("service_drain", self.timings.service_drain);
                let linger = self.draw("eni_linger", self.timings.eni_linger);
                let vpc = &json["service"]["networkConfiguration"]["awsvpcConfiguration"];
                let held: Vec<String> = ["subnets", "securityGroups"]
                    .iter()
                    .filter_map(|k| vpc[k].as_array())
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                self.lingering_enis.push((now + linger, held));
                let service = self.services.entry(key).or_default();
                service.drained.get_or_insert(now + drain);
                show_service(&mut json["service"], service, now);
            }
            "DescribeServices" => {
                let Some(list) = json["services"].as_array_mut() else {
                    return;
                };
                // A service the proxy never saw created is long since stable.
                let unknown = EcsService::default();
                for s in list {
                    let seen = service_key(s).and_then(|k| self.services.get(&k));
                    show_service(s, seen.unwrap_or(&unknown), now);
                }
            }
            _ => {}
        }
    }

    fn observe_discovery(&mut self, op: &Op, now: Instant, json: &mut Value) {
        if let Some(id) = json["OperationId"].as_str() {
            let span = if op.operation.contains("Namespace") {
                self.timings.namespace_operation
            } else {
                self.timings.discovery_service_operation
            };
            let takes = self.draw("discovery_operation", span);
            self.operations
                .insert(id.to_owned(), Pending::new(now, takes));
        }
        match op.operation.as_str() {
            "GetOperation" => {
                let operation = &mut json["Operation"];
                let pending = operation["Id"]
                    .as_str()
                    .and_then(|id| self.operations.get(id))
                    .filter(|p| !p.done(now));
                if let Some(p) = pending {
                    let status = if p.progress(now) < 0.5 {
                        "SUBMITTED"
                    } else {
                        "PENDING"
                    };
                    operation["Status"] = json!(status);
                }
            }
            "CreateService" => {
                let service = &json["Service"];
                if let (Some(id), Some(ns)) =
                    (service["Id"].as_str(), service["NamespaceId"].as_str())
                {
                    self.discovery_services.insert(id.to_owned(), ns.to_owned());
                }
            }
            "DeleteService" => {
                if let Some(id) = op.param("Id") {
                    self.discovery_services.remove(id);
                }
            }
            _ => {}
        }
    }

    fn observe_secrets(&mut self, op: &Op, now: Instant, json: &Value) {
        let forced = op
            .json()
            .is_some_and(|r| r["ForceDeleteWithoutRecovery"] == json!(true));
        if op.operation == "DeleteSecret"
            && forced
            && let Some(name) = json["Name"].as_str()
        {
            let takes = self.draw("secret_name_release", self.timings.secret_name_release);
            self.released_secrets.insert(name.to_owned(), now + takes);
        }
    }
}

/// Rewrites an ECS service object the way AWS would show it now: moto never runs tasks, so the
/// proxy plays the whole rollout (and the drain after a delete) from the recorded times.
fn show_service(json: &mut Value, seen: &EcsService, now: Instant) {
    let Some(service) = json.as_object_mut() else {
        return;
    };
    for (field, value) in &seen.echo {
        service.insert(field.clone(), value.clone());
    }
    if let Some(drained) = seen.drained {
        let status = if now < drained {
            "DRAINING"
        } else {
            "INACTIVE"
        };
        service.insert("status".into(), json!(status));
        return;
    }
    let desired = service["desiredCount"].as_i64().unwrap_or(0);
    let (rollout, running) = match seen.rollout {
        Some(p) if !p.done(now) => {
            let started = (desired as f64 * p.progress(now)).floor() as i64;
            ("IN_PROGRESS", started.min(desired - 1).max(0))
        }
        _ => ("COMPLETED", desired),
    };
    service.insert("runningCount".into(), json!(running));
    service.insert("pendingCount".into(), json!(desired - running));
    let task_definition = service["taskDefinition"].clone();
    let Some(deployments) = service.get_mut("deployments").and_then(Value::as_array_mut) else {
        return;
    };
    for d in deployments.iter_mut().filter(|d| d["status"] == "PRIMARY") {
        let id = d["id"].as_str().unwrap_or_default().to_owned();
        // moto keeps the first task definition on the PRIMARY deployment after an update.
        d["taskDefinition"] = task_definition.clone();
        d["desiredCount"] = json!(desired);
        d["runningCount"] = json!(running);
        d["pendingCount"] = json!(desired - running);
        d["rolloutState"] = json!(rollout);
        d["rolloutStateReason"] = if rollout == "COMPLETED" {
            json!(format!("ECS deployment {id} completed."))
        } else {
            json!(format!("ECS deployment {id} in progress."))
        };
    }
}

/// (cluster name, service name) of an ECS service object.
fn service_key(service: &Value) -> Option<(String, String)> {
    let cluster = service["clusterArn"].as_str()?;
    let name = service["serviceName"].as_str()?;
    Some((cluster_name(Some(cluster)), name.to_owned()))
}

/// A cluster name out of a name or an ARN; ECS's default cluster when none is given.
fn cluster_name(cluster: Option<&str>) -> String {
    let cluster = cluster.unwrap_or("default");
    cluster.rsplit('/').next().unwrap_or(cluster).to_owned()
}

/// Rewrites the `<state>` of each item of an EC2 answer, the item starting at its `<{id_tag}>`:
/// `state(id, moto's state)` gives the state to show and XML to put right after it.
fn rewrite_states(
    xml: &str,
    id_tag: &str,
    state: impl Fn(&str, &str) -> (String, String),
) -> String {
    let id_open = format!("<{id_tag}>");
    const STATE: &str = "<state>";
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(at) = rest.find(&id_open) {
        let id_start = at + id_open.len();
        let id = &rest[id_start..][..rest[id_start..].find('<').unwrap_or(0)];
        // This item's part of the answer ends where the next item's starts.
        let item_len = rest[id_start..]
            .find(&id_open)
            .unwrap_or(rest.len() - id_start);
        match rest[id_start..id_start + item_len].find(STATE) {
            Some(s) => {
                let state_start = id_start + s + STATE.len();
                let state_len = rest[state_start..].find('<').unwrap_or(0);
                let moto_state = &rest[state_start..state_start + state_len];
                let (shown, extra) = state(id, moto_state);
                out.push_str(&rest[..state_start]);
                out.push_str(&shown);
                rest = &rest[state_start + state_len..];
                if let Some(end) = rest.strip_prefix("</state>") {
                    out.push_str("</state>");
                    out.push_str(&extra);
                    rest = end;
                }
            }
            None => {
                out.push_str(&rest[..id_start]);
                rest = &rest[id_start..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The text of the first `<tag>` element.
fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find('<')?;
    Some(&xml[start..start + len])
}
