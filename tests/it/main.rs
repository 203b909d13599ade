//! Integration tests: the real `prefect-ecs` binary against a local moto server, with AWS state
//! read back through direct SDK calls (never through prefect-ecs' own code).
//! Every test owns its stack (unique name and VPC CIDR), so tests share one moto server.

mod adopt;
mod arm;
mod changes;
mod ci;
mod commands;
mod drift;
mod endpoints;
mod environments;
mod existing_network;
mod lifecycle;
mod lock;
mod online;
mod proxy;
#[path = "proxy/tests.rs"]
mod proxy_tests;
mod real_worker;
mod realism;
mod realism_more;
mod safety;
mod support;
mod work_pool;
