//! An inline policy of a role. IAM gives inline policies no tags: it is the stack's when its
//! role is.
use super::{AttrDef, KindDef};

pub const ROLE: &str = "role";
pub const NAME: &str = "name";
pub const DOCUMENT: &str = "document";

pub const DEF: KindDef = KindDef {
    name: "iam_role_policy",
    attrs: &[
        AttrDef::new(ROLE).replace(),
        AttrDef::new(NAME).replace(),
        AttrDef::new(DOCUMENT).policy(),
    ],
    ..KindDef::AWS
};
