//! Terraform habits, answered in prefect-ecs's terms before clap sees the command line
//! (issue 15, item 11): `-auto-approve` gets "did you mean `--auto-approve`?" instead of clap's
//! "to pass '-a' as a value, use '-- -a'", and `state list` what prefect-ecs does instead of
//! "a similar subcommand exists: 'status'". Pure: the arguments and clap's own command tree in,
//! a message out.

use clap::Command;

/// A message for the first Terraform habit in `args` (without the program name), if any.
pub fn terraform_habit(args: &[String], cli: &Command) -> Option<String> {
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .take_while(|a| *a != "--")
        .collect();
    let subcommand = args.iter().find(|a| !a.starts_with('-')).copied();
    let command = subcommand.and_then(|name| cli.find_subcommand(name));
    if let Some(name) = subcommand
        && command.is_none()
        && let Some(instead) = instead_of(name)
    {
        return Some(format!(
            "`{name}` is a Terraform command; prefect-ecs has none: {instead}"
        ));
    }
    for arg in &args {
        let Some(flag) = single_dash_long(arg) else {
            continue;
        };
        let (name, value) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (flag, None),
        };
        if let Some(message) = terraform_flag(name) {
            return Some(format!("`{arg}`: {message}"));
        }
        let known = |c: &Command| c.get_arguments().any(|a| a.get_long() == Some(name));
        let exists = match command {
            Some(c) => known(c) || known(cli),
            None => known(cli) || cli.get_subcommands().any(known),
        };
        if exists {
            let value = value.map(|v| format!("={v}")).unwrap_or_default();
            return Some(format!(
                "unexpected argument `{arg}`: did you mean `--{name}{value}`? (prefect-ecs's \
                 long flags take two dashes)"
            ));
        }
    }
    None
}

/// `-auto-approve` → `auto-approve`; not `-f`, `--x`, `-` or a negative number.
fn single_dash_long(arg: &str) -> Option<&str> {
    let rest = arg.strip_prefix('-')?;
    let letters = rest.split('=').next().unwrap_or_default();
    (!rest.starts_with('-')
        && letters.len() >= 2
        && letters.starts_with(|c: char| c.is_ascii_alphabetic()))
    .then_some(rest)
}

/// Terraform flags with no prefect-ecs counterpart of the same name.
fn terraform_flag(name: &str) -> Option<&'static str> {
    Some(match name {
        "refresh" | "refresh-only" => {
            "there is nothing to refresh: every plan reads the stack live from AWS"
        }
        "lock" => "the stack's lock cannot be skipped; a stale one is taken over by the next run",
        "input" => "prefect-ecs asks only to confirm; pass --auto-approve not to be asked",
        "chdir" => "run prefect-ecs from the folder you like and name the spec's path",
        "state" | "state-out" | "backup" => {
            "prefect-ecs keeps no state file: the resources' tags are the state"
        }
        _ => return None,
    })
}

/// What to do instead of a Terraform subcommand prefect-ecs does not have.
fn instead_of(name: &str) -> Option<&'static str> {
    Some(match name {
        "state" => {
            "there is no state file: the tags on the AWS resources are the state and `plan` \
             reads them live. To see what the stack holds: `prefect-ecs output SPEC` (ids) or \
             `prefect-ecs status SPEC` (the workers); to stop managing a resource, remove its \
             prefect-ecs:stack tag"
        }
        "refresh" => "every `plan` reads the stack live from AWS: there is nothing to refresh",
        "init" => {
            "there are no providers or backends to set up: `prefect-ecs validate SPEC`, then \
             `prefect-ecs plan SPEC`"
        }
        "taint" | "untaint" => {
            "nothing is marked for later: `prefect-ecs plan --replace ADDRESS SPEC` (or \
             `apply --replace`) plans the replacement at once; a resource deleted in AWS is \
             created again by the next apply, and a change AWS cannot make in place is \
             planned as a replacement by itself"
        }
        "import" => {
            "`prefect-ecs adopt SPEC` takes over what was built outside prefect-ecs and matches \
             the spec (`plan --adopt SPEC` shows it first); a work pool that already exists is \
             taken over with `adopt = true` in its [[work_pool]] table"
        }
        "workspace" => {
            "environments are [env.<name>] tables of one spec, chosen with --env <name> (or \
             PREFECT_ECS_ENV); each is a stack of its own, <stack>-<name>, and a file with \
             environments has no default one"
        }
        "fmt" => "`prefect-ecs validate SPEC` checks the spec; it is plain TOML to format",
        "console" | "providers" | "get" | "login" | "logout" | "test" | "modules" => {
            "see `prefect-ecs --help` for the commands there are"
        }
        "version" => "`prefect-ecs --version`",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn habit(line: &str) -> Option<String> {
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        terraform_habit(&args, &crate::cli::Cli::command())
    }

    #[test]
    fn single_dash_long_flags_are_answered_with_the_two_dash_flag() {
        let m = habit("apply -auto-approve stacks/dev.toml").unwrap();
        assert!(m.contains("did you mean `--auto-approve`?"), "{m}");
        let m = habit("plan -out=p.plan stacks/dev.toml").unwrap();
        assert!(m.contains("did you mean `--out=p.plan`?"), "{m}");
        let m = habit("plan -detailed-exitcode stacks/dev.toml").unwrap();
        assert!(m.contains("`--detailed-exitcode`"), "{m}");
        let m = habit("plan -var count=2 stacks/dev.toml").unwrap();
        assert!(m.contains("did you mean `--var`?"), "{m}");
        let m = habit("-no-color plan stacks/dev.toml").unwrap();
        assert!(m.contains("`--no-color`"), "{m}");
        // Short flags, the real thing and values after `--` are left to clap.
        assert_eq!(habit("logs -f stacks/dev.toml"), None);
        assert_eq!(habit("apply --auto-approve stacks/dev.toml"), None);
        assert_eq!(habit("plan stacks/dev.toml -- -var"), None);
        assert_eq!(habit("plan -nonsense stacks/dev.toml"), None);
    }

    #[test]
    fn terraform_subcommands_are_told_what_prefect_ecs_does_instead() {
        let m = habit("state list").unwrap();
        assert!(
            m.contains("the tags on the AWS resources are the state"),
            "{m}"
        );
        assert!(
            habit("taint ecs_service.w")
                .unwrap()
                .contains("created again")
        );
        assert!(habit("init").unwrap().contains("validate SPEC"));
        assert!(habit("refresh stacks/dev.toml").unwrap().contains("live"));
        // A spec named like a Terraform command is still a spec.
        assert_eq!(habit("plan state"), None);
        assert_eq!(habit("status stacks/dev.toml"), None);
    }
}
