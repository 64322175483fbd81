//! The command line (hand-rolled, like the drill's: a few flags do not justify a parser crate).

use crate::CliError;

pub const USAGE: &str = "\
multisite: the operator's command for a multisite deployment

USAGE:
    multisite [--topology FILE] status [--json]
    multisite [--topology FILE] history [--region R] [--json]
    multisite [--topology FILE] [TARGET] plan evacuate R [--planned] [--json]
    multisite [--topology FILE] [TARGET] plan failback R [--restore-writer] [--json]
    multisite [--topology FILE] [TARGET] evacuate R [--planned] [--yes] [--json]
    multisite [--topology FILE] [TARGET] failback R [--restore-writer] [--yes] [--json]
    multisite [--topology FILE] [TARGET] approve CHANGE [--yes] [--json]

The topology comes from --topology FILE, else MULTISITE_TOPOLOGY_PARAMETER (the stack's SSM parameter
in AWS_REGION, output TopologyParameterName), MULTISITE_TOPOLOGY_FILE or MULTISITE_TOPOLOGY (as the
functions read it). Credentials and Region come from the standard AWS chain; AWS_ENDPOINT_URL
reaches the local emulator (`drill --keep-running` prints it and the topology file).

COMMANDS:
    status     each Region's status (since when, by which change), routing, the Aurora writer, the
               latest lag-probe verdict and readiness, the scaler's coverage and capacities, and
               the evacuations waiting for approval
    history    the transitions and their steps, newest first (--region R: one Region's)
    plan       what evacuating or failing back R would do, computed by failover; nothing written
    evacuate   take R out of routing and the Aurora writer out of it, through failover's reconcile
               and safety rules (--planned: a switchover, for maintenance); holds until `failback`
    failback   bring R back (also with auto_failback off; --restore-writer: the writer too)
    approve    act on an evacuation waiting for approval (CHANGE as `status` shows it)

TARGET (where failover runs; evacuate, failback, approve and plan):
    (default)          invoke the deployed failover function (its role acts), found in the stack
                       `multisite` of the Region it is invoked in (DescribeStacks, output
                       FailoverFunctionArn)
    --stack NAME       that stack instead
    --function NAME    that function (name or ARN) instead
    --local            run failover's code in this process, with your own credentials
    --via REGION       the Region failover runs in (default: the first Region of the topology that
                       is not the one changing: static stability)

Every request carries your identity (STS GetCallerIdentity) into the ledger. evacuate, failback and
approve show the plan and ask before acting, unless --yes.
";

/// Which transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Evacuate { region: String, planned: bool },
    Failback { region: String, restore_writer: bool },
}

impl Transition {
    pub fn region(&self) -> &str {
        match self {
            Transition::Evacuate { region, .. } | Transition::Failback { region, .. } => region,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Status,
    History {
        region: Option<String>,
    },
    /// `plan evacuate|failback R`: a dry run.
    Plan(Transition),
    /// `evacuate R` / `failback R`.
    Apply {
        transition: Transition,
        yes: bool,
    },
    Approve {
        change: String,
        yes: bool,
    },
}

/// Where failover runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The deployed function, named or found in a stack's outputs.
    Remote { stack: Option<String>, function: Option<String> },
    /// In this process, with the operator's credentials.
    Local,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub topology: Option<String>,
    pub command: Command,
    pub json: bool,
    pub target: Target,
    pub via: Option<String>,
}

/// Parses the arguments after the program name; `Err(Usage(USAGE))` for `--help`.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, CliError> {
    let mut topology = None;
    let mut words: Vec<String> = Vec::new();
    let mut region = None;
    let (mut json, mut yes, mut planned, mut restore_writer, mut local) = (false, false, false, false, false);
    let (mut stack, mut function, mut via) = (None, None, None);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or_else(|| CliError::Usage(format!("{flag} needs a value")));
        match arg.as_str() {
            "-h" | "--help" | "help" => return Err(CliError::Usage(USAGE.into())),
            "--topology" => topology = Some(value("--topology")?),
            "--region" => region = Some(value("--region")?),
            "--stack" => stack = Some(value("--stack")?),
            "--function" => function = Some(value("--function")?),
            "--via" => via = Some(value("--via")?),
            "--json" => json = true,
            "--yes" | "-y" => yes = true,
            "--planned" => planned = true,
            "--restore-writer" => restore_writer = true,
            "--local" => local = true,
            other if other.starts_with('-') => {
                return Err(CliError::Usage(format!("unknown argument {other} (see multisite --help)")));
            }
            _ => words.push(arg),
        }
    }
    let usage = |what: &str| Err(CliError::Usage(format!("{what} (see multisite --help)")));
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let transition = |kind: &str, region: &str| -> Result<Transition, CliError> {
        match kind {
            "evacuate" if restore_writer => Err(CliError::Usage("--restore-writer is for failback".into())),
            "failback" if planned => Err(CliError::Usage(
                "--planned is for evacuate (a failback moves the writer, with --restore-writer, by switchover)".into(),
            )),
            "evacuate" => Ok(Transition::Evacuate { region: region.to_owned(), planned }),
            _ => Ok(Transition::Failback { region: region.to_owned(), restore_writer }),
        }
    };
    let command = match words.as_slice() {
        ["status"] => Command::Status,
        ["history"] => Command::History { region: region.take() },
        ["plan", kind @ ("evacuate" | "failback"), r] => Command::Plan(transition(kind, r)?),
        ["plan", ..] => return usage("plan evacuate R | plan failback R"),
        [kind @ ("evacuate" | "failback"), r] => Command::Apply { transition: transition(kind, r)?, yes },
        ["evacuate" | "failback"] => return usage("name the Region"),
        ["approve", change] => Command::Approve { change: (*change).to_owned(), yes },
        ["approve"] => return usage("approve CHANGE: the change id `multisite status` shows as pending"),
        [] => return Err(CliError::Usage(format!("name a command\n\n{USAGE}"))),
        [first, ..] if !["status", "history", "plan", "evacuate", "failback", "approve"].contains(first) => {
            return Err(CliError::Usage(format!("unknown argument {first} (see multisite --help)")));
        }
        _ => return usage(&format!("unexpected arguments {}", words.join(" "))),
    };
    if region.is_some() {
        return Err(CliError::Usage("--region is for history; the other commands name the Region itself".into()));
    }
    let operating = matches!(command, Command::Plan(_) | Command::Apply { .. } | Command::Approve { .. });
    if !operating && (local || stack.is_some() || function.is_some() || via.is_some()) {
        return Err(CliError::Usage(
            "--local, --stack, --function and --via are for plan, evacuate, failback and approve".into(),
        ));
    }
    if !matches!(command, Command::Apply { .. } | Command::Approve { .. }) && yes {
        return Err(CliError::Usage("--yes is for evacuate, failback and approve".into()));
    }
    if (planned || restore_writer) && !matches!(command, Command::Plan(_) | Command::Apply { .. }) {
        return Err(CliError::Usage("--planned and --restore-writer are for plan, evacuate and failback".into()));
    }
    let target = match (local, stack, function) {
        (true, None, None) => Target::Local,
        (true, _, _) => return Err(CliError::Usage("--local runs failover here: no --stack or --function".into())),
        (false, Some(_), Some(_)) => {
            return Err(CliError::Usage("--stack or --function, not both (--function names it directly)".into()));
        }
        (false, stack, function) => Target::Remote { stack, function },
    };
    Ok(Options { topology, command, json, target, via })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<Options, CliError> {
        parse(line.split_whitespace().map(str::to_owned))
    }

    const REMOTE: Target = Target::Remote { stack: None, function: None };

    #[test]
    fn table_of_command_lines() {
        let ok = |line: &str, command: Command, json: bool, topology: Option<&str>| {
            assert_eq!(
                args(line).expect(line),
                Options { topology: topology.map(str::to_owned), command, json, target: REMOTE, via: None },
                "{line}"
            );
        };
        ok("status", Command::Status, false, None);
        ok("--topology t.json status --json", Command::Status, true, Some("t.json"));
        ok("history", Command::History { region: None }, false, None);
        ok("history --region eu-west-1 --json", Command::History { region: Some("eu-west-1".into()) }, true, None);
        let evacuate = |planned| Transition::Evacuate { region: "us-east-1".into(), planned };
        let failback = |restore_writer| Transition::Failback { region: "us-east-1".into(), restore_writer };
        ok("plan evacuate us-east-1", Command::Plan(evacuate(false)), false, None);
        ok("plan evacuate us-east-1 --planned --json", Command::Plan(evacuate(true)), true, None);
        ok("plan failback us-east-1 --restore-writer", Command::Plan(failback(true)), false, None);
        ok("evacuate us-east-1 --yes", Command::Apply { transition: evacuate(false), yes: true }, false, None);
        ok("failback us-east-1", Command::Apply { transition: failback(false), yes: false }, false, None);
        ok("approve a#t#Alarm -y --json", Command::Approve { change: "a#t#Alarm".into(), yes: true }, true, None);
        let targets = [
            ("--local evacuate us-east-1", Target::Local, None),
            ("evacuate us-east-1 --stack ms", Target::Remote { stack: Some("ms".into()), function: None }, None),
            ("evacuate us-east-1 --function f", Target::Remote { stack: None, function: Some("f".into()) }, None),
            ("evacuate us-east-1 --local --via eu-west-1", Target::Local, Some("eu-west-1")),
        ];
        for (line, target, via) in targets {
            let options = args(line).expect(line);
            assert_eq!((options.target, options.via.as_deref()), (target, via), "{line}");
        }
        for bad in [
            "",
            "stats",
            "status history",
            "status --region us-east-1",
            "history --region",
            "--topology",
            "evacuate",
            "evacuate us-east-1 eu-west-1",
            "plan",
            "plan delete us-east-1",
            "plan evacuate us-east-1 --yes",
            "evacuate us-east-1 --restore-writer",
            "failback us-east-1 --planned",
            "evacuate us-east-1 --local --stack s",
            "evacuate us-east-1 --stack s --function f",
            "status --local",
            "approve",
            "approve c --planned",
            "evacuate us-east-1 --force",
        ] {
            let err = args(bad).expect_err(bad);
            assert!(matches!(err, CliError::Usage(_)) && err.exit_code() == 2, "{bad}: {err}");
        }
        assert!(matches!(args("--help"), Err(CliError::Usage(text)) if text == USAGE));
    }
}
