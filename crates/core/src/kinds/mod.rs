//! One module per resource kind: its name, its attributes (one constant each, which the graph,
//! the diff and the provider all use, so a misspelt attribute is a compile error, not a
//! perpetual diff) and how each attribute behaves in a diff. [`Kind::def`](crate::model::Kind::def)
//! is the registry: the one table in `model.rs` that names every kind and its module.
//!
//! What a kind does in AWS lives in the provider's module of the same name
//! (`src/provider/kinds/`), which reads and writes exactly these attributes.

pub mod cloud_map_service;
pub mod ecs_cluster;
pub mod ecs_service;
pub mod eip;
pub mod event_rule;
pub mod iam_role;
pub mod iam_role_policy;
pub mod internet_gateway;
pub mod log_group;
pub mod namespace;
pub mod nat_gateway;
pub mod route_table;
pub mod secret;
pub mod security_group;
pub mod sqs_queue;
pub mod sqs_queue_policy;
pub mod subnet;
pub mod task_definition;
pub mod vpc;
pub mod vpc_endpoint;
pub mod work_pool;

/// The ownership and user tags every kind but an inline role policy carries.
pub const TAGS: &str = "tags";

/// A resource kind: what the plan, the diff and the executor need to know of it.
#[derive(Debug)]
pub struct KindDef {
    /// The kind's name in addresses: `vpc` in `vpc.main`.
    pub name: &'static str,
    /// Every top-level attribute the graph sets or discovery reports, and nothing else.
    pub attrs: &'static [AttrDef],
    /// A replacement is created before the old resource is deleted.
    pub create_before_destroy: bool,
    /// Made through the AWS APIs, so it counts toward `--parallelism`, which keeps a run
    /// within AWS's request rates. A work pool is the Prefect API's: its client paces its own
    /// writes, and a pool step waiting for a slot behind ten service rollouts would only wait.
    pub aws: bool,
    /// Keys, at any depth of an attribute, whose arrays keep their order (a command line);
    /// every other array is a set: compared sorted, shown whole.
    pub ordered: &'static [&'static str],
}

impl KindDef {
    /// An AWS kind with no attributes yet: the base of every `DEF`.
    pub const AWS: KindDef = KindDef {
        name: "",
        attrs: &[],
        create_before_destroy: false,
        aws: true,
        ordered: &[],
    };

    pub fn attr(&self, name: &str) -> Option<&'static AttrDef> {
        self.attrs.iter().find(|a| a.name == name)
    }

    /// A change to `attr` forces a new resource.
    pub fn replaces(&self, attr: &str) -> bool {
        self.attr(attr).is_some_and(|a| a.replace)
    }

    /// Some API implementations leave `attr` out of their answers: absent means unknown.
    pub fn optional(&self, attr: &str) -> bool {
        self.attr(attr).is_some_and(|a| a.optional)
    }

    pub fn shape(&self, attr: &str) -> Shape {
        self.attr(attr).map_or(Shape::Value, |a| a.shape)
    }
}

/// One top-level attribute of a kind.
#[derive(Debug, Clone, Copy)]
pub struct AttrDef {
    pub name: &'static str,
    /// A change forces a new resource.
    pub replace: bool,
    /// Some API implementations do not report it: where absent it cannot drift.
    pub optional: bool,
    pub shape: Shape,
}

/// How an attribute's value is brought to one canonical form before it is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// JSON as it is; arrays are sets unless the kind lists their key in `ordered`.
    Value,
    /// An IAM policy document: IAM takes a string for a one-element list and answers either way.
    Policy,
    /// A tag map: AWS's own `aws:` keys are not ours to compare.
    Tags,
}

impl AttrDef {
    /// An attribute updated in place, reported by every implementation, compared as JSON.
    pub const fn new(name: &'static str) -> AttrDef {
        AttrDef {
            name,
            replace: false,
            optional: false,
            shape: Shape::Value,
        }
    }

    pub const fn replace(self) -> AttrDef {
        AttrDef {
            replace: true,
            ..self
        }
    }

    pub const fn optional(self) -> AttrDef {
        AttrDef {
            optional: true,
            ..self
        }
    }

    pub const fn policy(self) -> AttrDef {
        AttrDef {
            shape: Shape::Policy,
            ..self
        }
    }

    /// The `tags` attribute.
    pub const TAGS: AttrDef = AttrDef {
        name: TAGS,
        replace: false,
        optional: false,
        shape: Shape::Tags,
    };
}
