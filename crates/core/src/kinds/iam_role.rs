//! An IAM role that ECS tasks assume, with the managed policies attached to it.
use super::{AttrDef, KindDef};

pub const NAME: &str = "name";
pub const ASSUME_ROLE_POLICY: &str = "assume_role_policy";
pub const MANAGED_POLICY_ARNS: &str = "managed_policy_arns";
/// The role's path (`/`, `/prefect/`): part of its ARN, so a change replaces it.
pub const PATH: &str = "path";
/// The managed policy that bounds the role's permissions (`[iam] permissions_boundary`), or
/// null.
pub const PERMISSIONS_BOUNDARY: &str = "permissions_boundary";

pub const DEF: KindDef = KindDef {
    name: "iam_role",
    attrs: &[
        AttrDef::new(NAME).replace(),
        AttrDef::new(ASSUME_ROLE_POLICY).policy(),
        AttrDef::new(MANAGED_POLICY_ARNS),
        AttrDef::new(PATH).replace(),
        AttrDef::new(PERMISSIONS_BOUNDARY),
        AttrDef::TAGS,
    ],
    ..KindDef::AWS
};
