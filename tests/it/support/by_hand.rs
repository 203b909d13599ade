//! Resources made the way a user makes them outside prefect-ecs: with the SDK, untagged by
//! prefect-ecs (an existing network, a stack to adopt).

use aws_sdk_ec2::types::{AttributeBooleanValue, DomainType, Tag};
use serde_json::json;

use super::aws::Aws;

/// `Name` on an EC2 resource (or any tag: `key`, `value`).
pub async fn tag(aws: &Aws, id: &str, key: &str, value: &str) {
    aws.ec2
        .create_tags()
        .resources(id)
        .tags(Tag::builder().key(key).value(value).build())
        .send()
        .await
        .expect("CreateTags");
}

fn on() -> AttributeBooleanValue {
    AttributeBooleanValue::builder().value(true).build()
}

/// A VPC with DNS support and hostnames on.
pub async fn vpc(aws: &Aws, cidr: &str) -> String {
    let vpc = aws
        .ec2
        .create_vpc()
        .cidr_block(cidr)
        .send()
        .await
        .expect("CreateVpc")
        .vpc()
        .and_then(|v| v.vpc_id())
        .expect("vpc id")
        .to_owned();
    for hostnames in [false, true] {
        let call = aws.ec2.modify_vpc_attribute().vpc_id(&vpc);
        let call = match hostnames {
            true => call.enable_dns_hostnames(on()),
            false => call.enable_dns_support(on()),
        };
        call.send().await.expect("ModifyVpcAttribute");
    }
    vpc
}

/// An internet gateway attached to `vpc`.
pub async fn internet_gateway(aws: &Aws, vpc: &str) -> String {
    let igw = aws
        .ec2
        .create_internet_gateway()
        .send()
        .await
        .expect("CreateInternetGateway")
        .internet_gateway()
        .and_then(|g| g.internet_gateway_id())
        .expect("igw id")
        .to_owned();
    aws.ec2
        .attach_internet_gateway()
        .internet_gateway_id(&igw)
        .vpc_id(vpc)
        .send()
        .await
        .expect("AttachInternetGateway");
    igw
}

/// A subnet; `public`: tasks launched in it get a public IP.
pub async fn subnet(aws: &Aws, vpc: &str, cidr: &str, az: &str, public: bool) -> String {
    let id = aws
        .ec2
        .create_subnet()
        .vpc_id(vpc)
        .cidr_block(cidr)
        .availability_zone(az)
        .send()
        .await
        .expect("CreateSubnet")
        .subnet()
        .and_then(|s| s.subnet_id())
        .expect("subnet id")
        .to_owned();
    if public {
        aws.ec2
            .modify_subnet_attribute()
            .subnet_id(&id)
            .map_public_ip_on_launch(on())
            .send()
            .await
            .expect("ModifySubnetAttribute");
    }
    id
}

/// A NAT gateway in `subnet` with an Elastic IP of its own.
pub async fn nat_gateway(aws: &Aws, subnet: &str) -> String {
    let eip = aws
        .ec2
        .allocate_address()
        .domain(DomainType::Vpc)
        .send()
        .await
        .expect("AllocateAddress")
        .allocation_id()
        .expect("allocation id")
        .to_owned();
    aws.ec2
        .create_nat_gateway()
        .subnet_id(subnet)
        .allocation_id(eip)
        .send()
        .await
        .expect("CreateNatGateway")
        .nat_gateway()
        .and_then(|n| n.nat_gateway_id())
        .expect("nat id")
        .to_owned()
}

/// A route table sending `0.0.0.0/0` to `target` (`igw-…` or `nat-…`), associated with
/// `subnets`.
pub async fn route_table(aws: &Aws, vpc: &str, target: &str, subnets: &[String]) -> String {
    let table = aws
        .ec2
        .create_route_table()
        .vpc_id(vpc)
        .send()
        .await
        .expect("CreateRouteTable")
        .route_table()
        .and_then(|t| t.route_table_id())
        .expect("rtb id")
        .to_owned();
    let route = aws
        .ec2
        .create_route()
        .route_table_id(&table)
        .destination_cidr_block("0.0.0.0/0");
    let route = match target.starts_with("nat-") {
        true => route.nat_gateway_id(target),
        false => route.gateway_id(target),
    };
    route.send().await.expect("CreateRoute");
    for s in subnets {
        associate(aws, &table, s).await;
    }
    table
}

pub async fn associate(aws: &Aws, table: &str, subnet: &str) {
    aws.ec2
        .associate_route_table()
        .route_table_id(table)
        .subnet_id(subnet)
        .send()
        .await
        .expect("AssociateRouteTable");
}

/// The trust policy of a role ECS tasks assume.
pub fn ecs_tasks_trust() -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": ["ecs-tasks.amazonaws.com"]}, "Action": ["sts:AssumeRole"]}]
    })
    .to_string()
}

pub async fn delete_subnet(aws: &Aws, subnet: &str) {
    aws.ec2
        .delete_subnet()
        .subnet_id(subnet)
        .send()
        .await
        .expect("DeleteSubnet");
}

/// A hand-made VPC taken down again: its route tables (not the main one), internet
/// gateways and subnets, then the VPC.
pub async fn teardown(aws: &Aws, vpc: &str) {
    let in_vpc = || {
        aws_sdk_ec2::types::Filter::builder()
            .name("vpc-id")
            .values(vpc)
            .build()
    };
    let tables = aws
        .ec2
        .describe_route_tables()
        .filters(in_vpc())
        .send()
        .await
        .expect("DescribeRouteTables");
    for t in tables.route_tables() {
        if t.associations().iter().any(|a| a.main() == Some(true)) {
            continue;
        }
        for a in t.associations() {
            if let Some(id) = a.route_table_association_id() {
                aws.ec2
                    .disassociate_route_table()
                    .association_id(id)
                    .send()
                    .await
                    .expect("DisassociateRouteTable");
            }
        }
        aws.ec2
            .delete_route_table()
            .route_table_id(t.route_table_id().unwrap_or_default())
            .send()
            .await
            .expect("DeleteRouteTable");
    }
    let attached = aws_sdk_ec2::types::Filter::builder()
        .name("attachment.vpc-id")
        .values(vpc)
        .build();
    let igws = aws
        .ec2
        .describe_internet_gateways()
        .filters(attached)
        .send()
        .await
        .expect("DescribeInternetGateways");
    for g in igws.internet_gateways() {
        let id = g.internet_gateway_id().unwrap_or_default();
        aws.ec2
            .detach_internet_gateway()
            .internet_gateway_id(id)
            .vpc_id(vpc)
            .send()
            .await
            .expect("DetachInternetGateway");
        aws.ec2
            .delete_internet_gateway()
            .internet_gateway_id(id)
            .send()
            .await
            .expect("DeleteInternetGateway");
    }
    let subnets = aws
        .ec2
        .describe_subnets()
        .filters(in_vpc())
        .send()
        .await
        .expect("DescribeSubnets");
    for s in subnets.subnets() {
        delete_subnet(aws, s.subnet_id().unwrap_or_default()).await;
    }
    aws.ec2
        .delete_vpc()
        .vpc_id(vpc)
        .send()
        .await
        .expect("DeleteVpc");
}
