//! The command line (hand-rolled, like the drill's: a few flags do not justify a parser crate).

use crate::CliError;

pub const USAGE: &str = "\
multisite: the operator's command for a multisite deployment

USAGE:
    multisite [--topology FILE] status [--json]
    multisite [--topology FILE] history [--region R] [--json]

The topology comes from --topology FILE, else MULTISITE_TOPOLOGY_FILE or MULTISITE_TOPOLOGY (as the
functions read it). Credentials and Region come from the standard AWS chain; AWS_ENDPOINT_URL
reaches the local emulator (`drill --keep-running` prints it and the topology file).

COMMANDS:
    status     each Region's status (since when, by which change), routing, the Aurora writer, the
               latest lag-probe verdict and readiness, the scaler's coverage and capacities
    history    the transitions and their steps, newest first (--region R: one Region's)
";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Status,
    History { region: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub topology: Option<String>,
    pub command: Command,
    pub json: bool,
}

/// Parses the arguments after the program name; `Err(Usage(USAGE))` for `--help`.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, CliError> {
    let mut topology = None;
    let mut command = None;
    let mut region = None;
    let mut json = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or_else(|| CliError::Usage(format!("{flag} needs a value")));
        match arg.as_str() {
            "-h" | "--help" | "help" => return Err(CliError::Usage(USAGE.into())),
            "--topology" => topology = Some(value("--topology")?),
            "--region" => region = Some(value("--region")?),
            "--json" => json = true,
            "status" | "history" if command.is_none() => command = Some(arg),
            other => return Err(CliError::Usage(format!("unknown argument {other} (see multisite --help)"))),
        }
    }
    let command = match command.as_deref() {
        Some("status") if region.is_some() => {
            return Err(CliError::Usage("status shows every Region: --region is for history".into()));
        }
        Some("status") => Command::Status,
        Some("history") => Command::History { region },
        _ => return Err(CliError::Usage(format!("name a command\n\n{USAGE}"))),
    };
    Ok(Options { topology, command, json })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<Options, CliError> {
        parse(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn table_of_command_lines() {
        let ok = |line: &str, command: Command, json: bool, topology: Option<&str>| {
            assert_eq!(
                args(line).expect(line),
                Options { topology: topology.map(str::to_owned), command, json },
                "{line}"
            );
        };
        ok("status", Command::Status, false, None);
        ok("--topology t.json status --json", Command::Status, true, Some("t.json"));
        ok("history", Command::History { region: None }, false, None);
        ok("history --region eu-west-1 --json", Command::History { region: Some("eu-west-1".into()) }, true, None);
        for bad in ["", "stats", "status history", "status --region us-east-1", "history --region", "--topology"] {
            let err = args(bad).expect_err(bad);
            assert!(matches!(err, CliError::Usage(_)) && err.exit_code() == 2, "{bad}: {err}");
        }
        assert!(matches!(args("--help"), Err(CliError::Usage(text)) if text == USAGE));
    }
}
