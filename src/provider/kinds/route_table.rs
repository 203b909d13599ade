//! A route table with its routes and subnet associations. CreateRouteTable takes a client
//! token; a route or association sent again after its answer was lost finds itself there.

use aws_sdk_ec2::types::ResourceType;
use serde_json::{Value, json};

use super::super::ec2::{Scope, delete_ec2, spec_tags, sync_ec2_tags, tag_map};
use super::super::{
    Aws, Found, already, attr, attr_strings, aws_err, observed, request_token, tags_value,
};
use super::{Create, Resource, Update};
use crate::apply::ProviderError;
use crate::kinds::TAGS;
use crate::kinds::route_table::{ROUTES, SUBNET_IDS, VPC_ID};
use crate::model::{Attrs, Observed, Outputs};
use crate::spec::Spec;

pub(super) struct RouteTable;

/// The output that holds the association of the table with `subnet`.
fn association(subnet: &str) -> String {
    format!("association:{subnet}")
}

async fn put_route(aws: &Aws, table: &str, route: &Value, replace: bool) -> Result<(), ProviderError> {
    let dest = route["destination"].as_str().unwrap_or("0.0.0.0/0");
    let target = route["target"].as_str().unwrap_or_default();
    let nat = target.starts_with("nat-");
    if replace {
        let mut r = aws
            .ec2
            .replace_route()
            .route_table_id(table)
            .destination_cidr_block(dest);
        r = if nat {
            r.nat_gateway_id(target)
        } else {
            r.gateway_id(target)
        };
        r.send().await.map_err(|e| aws_err("ReplaceRoute", e))?;
        return Ok(());
    }
    let mut r = aws
        .ec2
        .create_route()
        .route_table_id(table)
        .destination_cidr_block(dest);
    r = if nat {
        r.nat_gateway_id(target)
    } else {
        r.gateway_id(target)
    };
    match r.send().await.map_err(|e| aws_err("CreateRoute", e)) {
        // Sent again after its answer was lost: the route is there; make sure it is this one.
        Err(e) if e.is(&["RouteAlreadyExists"]) => Box::pin(put_route(aws, table, route, true)).await,
        other => other.map(|_| ()).map_err(Into::into),
    }
}

async fn associate(aws: &Aws, table: &str, subnet: &str) -> Result<(), ProviderError> {
    let r = aws
        .ec2
        .associate_route_table()
        .route_table_id(table)
        .subnet_id(subnet)
        .send()
        .await
        .map_err(|e| aws_err("AssociateRouteTable", e));
    match r {
        // Sent again after its answer was lost: associated already, with this table.
        Err(e) if e.is(&["Resource.AlreadyAssociated"]) && associated(aws, table, subnet).await? => {}
        other => {
            other?;
        }
    }
    Ok(())
}

async fn associated(aws: &Aws, table: &str, subnet: &str) -> Result<bool, ProviderError> {
    let out = aws
        .ec2
        .describe_route_tables()
        .route_table_ids(table)
        .send()
        .await
        .map_err(|e| aws_err("DescribeRouteTables", e))?;
    Ok(out
        .route_tables()
        .iter()
        .flat_map(|t| t.associations())
        .any(|a| a.subnet_id() == Some(subnet)))
}

async fn disassociate(aws: &Aws, association: &str) -> Result<(), ProviderError> {
    aws.ec2
        .disassociate_route_table()
        .association_id(association)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| aws_err("DisassociateRouteTable", e))
        .or_else(already(&["InvalidAssociationID.NotFound"]))?;
    Ok(())
}

impl Resource for RouteTable {
    async fn discover(&self, aws: &Aws, _: &Spec) -> Result<Found, ProviderError> {
        let rts = aws
            .ec2
            .describe_route_tables()
            .filters(aws.discovery_filter(Scope::Vpc))
            .send()
            .await
            .map_err(|e| aws_err("DescribeRouteTables", e))?;
        let mut found = Found::default();
        for rt in rts.route_tables() {
            let (Some(a), Some(id)) = (rt.route_table_id().and_then(|id| aws.ec2_address(rt.tags(), id)), rt.route_table_id()) else {
                continue;
            };
            let mut routes = Vec::new();
            let mut uses: Vec<String> = rt.vpc_id().map(String::from).into_iter().collect();
            for r in rt.routes() {
                if r.origin().map(|o| o.as_str()) != Some("CreateRoute") {
                    continue;
                }
                // A gateway endpoint's route (to its prefix list) is the endpoint's, made and
                // removed with it: not one of the table's own.
                if r.destination_cidr_block().is_none()
                    || r.gateway_id().is_some_and(|g| g.starts_with("vpce-"))
                {
                    continue;
                }
                let target = r
                    .nat_gateway_id()
                    .or(r.gateway_id())
                    .unwrap_or("(blackhole)");
                routes.push(json!({"destination": r.destination_cidr_block(), "target": target}));
                uses.push(target.into());
            }
            let mut o = observed(a, id, &[], Attrs::new(), vec![]);
            let mut subnets = Vec::new();
            for assoc in rt.associations() {
                if let (Some(s), Some(aid)) = (assoc.subnet_id(), assoc.route_table_association_id()) {
                    subnets.push(json!(s));
                    uses.push(s.into());
                    o.outputs.insert(association(s), aid.into());
                }
            }
            o.attrs = Attrs::from([
                (VPC_ID.into(), json!(rt.vpc_id())),
                (ROUTES.into(), Value::Array(routes)),
                (SUBNET_IDS.into(), Value::Array(subnets)),
                (TAGS.into(), tags_value(&tag_map(rt.tags()))),
            ]);
            o.uses = uses;
            found.resources.push(o);
        }
        Ok(found)
    }

    async fn create(&self, aws: &Aws, c: &Create<'_>) -> Result<Outputs, ProviderError> {
        let out = aws
            .ec2
            .create_route_table()
            .vpc_id(attr(c.attrs, VPC_ID)?)
            .tag_specifications(spec_tags(ResourceType::RouteTable, c.tags))
            // The SDK resends it on its retries: a lost answer makes no second table.
            .client_token(request_token())
            .send()
            .await
            .map_err(|e| aws_err("CreateRouteTable", e))?;
        let id = out
            .route_table()
            .and_then(|r| r.route_table_id())
            .unwrap_or_default()
            .to_string();
        // Routes and associations need only the table: all at once.
        let routes = c
            .attrs
            .get(ROUTES)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|r| put_route(aws, &id, r, false));
        let subnets = attr_strings(c.attrs.get(SUBNET_IDS));
        let associations = subnets.iter().map(|s| associate(aws, &id, s));
        let (routes, associations) = tokio::join!(
            futures::future::try_join_all(routes),
            futures::future::try_join_all(associations),
        );
        routes?;
        associations?;
        Ok(Outputs::from([("id".into(), id)]))
    }

    async fn update(&self, aws: &Aws, u: &Update<'_>) -> Result<(), ProviderError> {
        let (attrs, o) = (u.attrs, u.observed);
        let routes = |a: &Attrs| a.get(ROUTES).and_then(Value::as_array).cloned().unwrap_or_default();
        let (want, have) = (routes(attrs), routes(&o.attrs));
        for r in want.iter().filter(|r| !have.contains(r)) {
            let exists = have.iter().any(|h| h["destination"] == r["destination"]);
            put_route(aws, &o.id, r, exists).await?;
        }
        for h in have
            .iter()
            .filter(|h| !want.iter().any(|r| r["destination"] == h["destination"]))
        {
            aws.ec2
                .delete_route()
                .route_table_id(&o.id)
                .destination_cidr_block(h["destination"].as_str().unwrap_or_default())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_err("DeleteRoute", e))
                .or_else(already(&["InvalidRoute.NotFound"]))?;
        }
        let want = attr_strings(attrs.get(SUBNET_IDS));
        let have = attr_strings(o.attrs.get(SUBNET_IDS));
        for s in have.iter().filter(|s| !want.contains(s)) {
            if let Some(assoc) = o.outputs.get(&association(s)) {
                disassociate(aws, assoc).await?;
            }
        }
        for s in want.iter().filter(|s| !have.contains(s)) {
            associate(aws, &o.id, s).await?;
        }
        sync_ec2_tags(aws, attrs, o).await
    }

    async fn delete(&self, aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
        let disassociations = o
            .outputs
            .iter()
            .filter(|(k, _)| k.starts_with("association:"))
            .map(|(_, assoc)| disassociate(aws, assoc));
        futures::future::try_join_all(disassociations).await?;
        delete_ec2(aws, o, || async {
            aws.ec2
                .delete_route_table()
                .route_table_id(&o.id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_err("DeleteRouteTable", e))
                .or_else(already(&["InvalidRouteTableID.NotFound"]))
        })
        .await
    }
}
