//! IAM policy evaluation for one identity policy, as AWS evaluates it for the parts prefect-ecs
//! writes: `Allow` and `Deny` statements, `Action` / `NotAction` and `Resource` with `*` and `?`
//! wildcards, and the condition operators `StringEquals`, `StringLike`, `ArnEquals`, `ArnLike`
//! (with `IfExists`). An explicit deny wins; otherwise a request is allowed only when some
//! statement allows it; a condition on a key the request does not carry fails; an operator or
//! element this evaluator does not know makes its statement match nothing (an unknown Allow
//! never allows, an unknown Deny is treated as denying). Pure: `verify` and the tests use it
//! to prove that the worker's policy allows what the worker does and nothing beside it.

use std::collections::BTreeMap;

use serde_json::Value;

/// One API call as IAM sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `service:Operation`, e.g. `ecs:RunTask`.
    pub action: String,
    /// The ARN the call acts on, `*` for an action without resource-level permissions.
    pub resource: String,
    /// Condition keys and their values, e.g. `ecs:cluster` → the cluster's ARN.
    pub context: BTreeMap<String, String>,
}

impl Request {
    pub fn new(action: &str, resource: &str) -> Request {
        Request {
            action: action.into(),
            resource: resource.into(),
            context: BTreeMap::new(),
        }
    }

    pub fn with(mut self, key: &str, value: &str) -> Request {
        self.context.insert(key.to_ascii_lowercase(), value.into());
        self
    }
}

/// Whether `document` allows `request`.
pub fn allows(document: &Value, request: &Request) -> bool {
    let statements: Vec<&Value> = match document.get("Statement") {
        Some(Value::Array(s)) => s.iter().collect(),
        Some(s) => vec![s],
        None => Vec::new(),
    };
    let mut allowed = false;
    for s in statements {
        match s.get("Effect").and_then(Value::as_str) {
            Some("Deny") if matches(s, request).unwrap_or(true) => return false,
            Some("Allow") if matches(s, request) == Some(true) => allowed = true,
            _ => {}
        }
    }
    allowed
}

/// Whether statement `s` applies to `request`; `None` when it uses what is not understood.
fn matches(s: &Value, request: &Request) -> Option<bool> {
    let action = match (s.get("Action"), s.get("NotAction")) {
        (Some(a), None) => any(a, |p| glob(p, &request.action, true)),
        (None, Some(a)) => !any(a, |p| glob(p, &request.action, true)),
        _ => return None,
    };
    let resource = match (s.get("Resource"), s.get("NotResource")) {
        (Some(r), None) => any(r, |p| glob(p, &request.resource, false)),
        (None, Some(r)) => !any(r, |p| glob(p, &request.resource, false)),
        _ => return None,
    };
    let condition = match s.get("Condition") {
        None => true,
        Some(Value::Object(ops)) => {
            let mut all = true;
            for (op, keys) in ops {
                all &= condition(op, keys.as_object()?, request)?;
            }
            all
        }
        Some(_) => return None,
    };
    Some(action && resource && condition)
}

fn condition(op: &str, keys: &serde_json::Map<String, Value>, request: &Request) -> Option<bool> {
    let (op, if_exists) = match op.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (op, false),
    };
    let like = match op {
        "StringEquals" | "ArnEquals" => false,
        "StringLike" | "ArnLike" => true,
        _ => return None,
    };
    let mut all = true;
    for (key, wanted) in keys {
        all &= match request.context.get(&key.to_ascii_lowercase()) {
            None => if_exists,
            Some(have) => any(wanted, |w| {
                if like {
                    glob(w, have, false)
                } else {
                    w == have
                }
            }),
        };
    }
    Some(all)
}

/// Whether any of the patterns (a string or a list of them) satisfies `f`.
fn any(patterns: &Value, f: impl Fn(&str) -> bool) -> bool {
    match patterns {
        Value::String(p) => f(p),
        Value::Array(ps) => ps.iter().filter_map(Value::as_str).any(f),
        _ => false,
    }
}

/// IAM's wildcard match: `*` any run of characters, `?` one; actions ignore case.
fn glob(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if ignore_case {
        (
            pattern.to_ascii_lowercase().chars().collect(),
            text.to_ascii_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    // Iterative wildcard matching with backtracking to the last `*`.
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcards_and_case() {
        assert!(glob("ecs:*", "ecs:RunTask", true));
        assert!(glob("ECS:runtask", "ecs:RunTask", true));
        assert!(!glob("ecs:Run*", "ecs:StopTask", true));
        assert!(glob(
            "arn:aws:logs:*:log-group:g:log-stream:*",
            "arn:aws:logs:us-east-1:1:log-group:g:log-stream:s",
            false
        ));
        assert!(!glob(
            "arn:aws:logs:*:log-group:g:log-stream:*",
            "arn:aws:logs:us-east-1:1:log-group:other:log-stream:s",
            false
        ));
        assert!(glob("a?c", "abc", false) && !glob("a?c", "ac", false));
        assert!(!glob("Arn:x", "arn:x", false));
    }

    #[test]
    fn conditions_deny_and_the_unknown() {
        let doc = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["ecs:RunTask"], "Resource": "*",
             "Condition": {"ArnEquals": {"ecs:cluster": "arn:c"}}},
            {"Effect": "Allow", "Action": "ecs:DescribeTaskDefinition", "Resource": "*"},
            {"Effect": "Deny", "Action": "ecs:DescribeTaskDefinition", "Resource": "arn:secret-td"},
            {"Effect": "Allow", "Action": "ecs:StopTask", "Resource": "*",
             "Condition": {"NumericLessThan": {"x": "1"}}},
        ]});
        let run = Request::new("ecs:RunTask", "arn:td");
        assert!(allows(&doc, &run.clone().with("ecs:cluster", "arn:c")));
        assert!(!allows(&doc, &run.clone().with("ecs:cluster", "arn:other")));
        assert!(!allows(&doc, &run), "a condition on a missing key fails");
        assert!(allows(
            &doc,
            &Request::new("ecs:DescribeTaskDefinition", "arn:td")
        ));
        assert!(!allows(
            &doc,
            &Request::new("ecs:DescribeTaskDefinition", "arn:secret-td")
        ));
        assert!(!allows(
            &doc,
            &Request::new("ecs:StopTask", "arn:t").with("x", "0")
        ));
        assert!(!allows(&doc, &Request::new("iam:PassRole", "arn:r")));
    }
}
