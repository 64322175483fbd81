use multisite::args::{self, Command};
use multisite::operate::{self, Ask};
use multisite::{CliError, Fleet};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Usage(text)) if text == args::USAGE => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("multisite: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

async fn run() -> Result<(), CliError> {
    let options = args::parse(std::env::args().skip(1))?;
    let topology = match &options.topology {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| CliError::Topology(format!("read {path}: {e}")))?;
            shared::Topology::from_json(&text).map_err(|e| CliError::Topology(format!("{path}: {e}")))?
        }
        // MULTISITE_TOPOLOGY_PARAMETER (the stack's SSM parameter, in AWS_REGION), else
        // MULTISITE_TOPOLOGY_FILE or MULTISITE_TOPOLOGY: what the functions read.
        None => {
            let base = shared::clients::load_base_config().await;
            let store = shared::TopologyStore::from_env(base).map_err(|e| CliError::Topology(e.to_string()))?;
            store.current().await.map_err(|e| CliError::Topology(e.to_string()))?.topology.clone()
        }
    };
    // failover's metrics (EMF lines for CloudWatch Logs) mean nothing here: the report is the output.
    shared::metrics::redirect_emit(Box::new(std::io::sink()));
    let fleet = Fleet::connect(topology).await;
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    match &options.command {
        Command::Status => {
            let status = multisite::status::status(&fleet, now_ms).await?;
            if options.json {
                println!("{}", serde_json::to_string_pretty(&status).unwrap_or_default());
            } else {
                print!("{}", status.render());
            }
        }
        Command::History { region } => {
            let transitions = multisite::history::history(&fleet, region.as_deref()).await?;
            if options.json {
                println!("{}", serde_json::to_string_pretty(&transitions).unwrap_or_default());
            } else {
                print!("{}", multisite::history::render(&transitions));
            }
        }
        Command::Plan(transition) => {
            let ask = Ask::Transition { transition: transition.clone(), dry_run: true };
            let what = format!("plan {}", describe(transition));
            let sent = send(&fleet, &options, &ask, now_ms).await?;
            print_sent(&what, &sent, options.json);
            operate::verdict(&sent, false)?;
        }
        Command::Apply { transition, yes } => {
            let what = describe(transition);
            if !yes {
                // The plan first, computed by failover as a dry run, then the question.
                let ask = Ask::Transition { transition: transition.clone(), dry_run: true };
                let plan = send(&fleet, &options, &ask, now_ms).await?;
                eprint!("{}", operate::render(&format!("plan {what}"), &plan));
                operate::verdict(&plan, false)?;
                confirm(&format!("{what}?"))?;
            }
            let ask = Ask::Transition { transition: transition.clone(), dry_run: false };
            let sent = send(&fleet, &options, &ask, now_ms).await?;
            print_sent(&what, &sent, options.json);
            operate::verdict(&sent, false)?;
        }
        Command::Approve { change, yes } => {
            let ask = Ask::Approve { change: change.clone() };
            let region = ask.region(&fleet)?;
            if !yes {
                confirm(&format!("approve {change} (evacuate {region})?"))?;
            }
            let sent = send(&fleet, &options, &ask, now_ms).await?;
            print_sent(&format!("approve {change}"), &sent, options.json);
            operate::verdict(&sent, true)?;
        }
    }
    Ok(())
}

fn describe(transition: &args::Transition) -> String {
    match transition {
        args::Transition::Evacuate { region, planned } => {
            format!("evacuate {region}{}", if *planned { " (planned: switchover)" } else { "" })
        }
        args::Transition::Failback { region, restore_writer } => {
            format!("failback {region}{}", if *restore_writer { " (restoring the writer)" } else { "" })
        }
    }
}

/// The identity, the Region failover runs in, then the request.
async fn send(fleet: &Fleet, options: &args::Options, ask: &Ask, now_ms: u64) -> Result<operate::Sent, CliError> {
    let changing = ask.region(fleet)?;
    let via = operate::via_region(fleet, options.via.as_deref(), &changing)?;
    let operator = operate::caller_identity(fleet, &via).await?;
    operate::send(fleet, &options.target, &via, &ask.request(&operator, now_ms)).await
}

fn print_sent(what: &str, sent: &operate::Sent, json: bool) {
    if json {
        let out =
            serde_json::json!({"via": sent.via, "runner": sent.runner, "response": sent.response, "error": sent.error});
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        print!("{}", operate::render(what, sent));
    }
}

/// Asks, and reads the answer from standard input (a terminal, or a pipe); anything but `y` or
/// `yes` (an empty input included) is no.
fn confirm(question: &str) -> Result<(), CliError> {
    let stdin = std::io::stdin();
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = stdin.lock().read_line(&mut line);
    match line.trim() {
        "y" | "Y" | "yes" => Ok(()),
        _ if !stdin.is_terminal() && line.is_empty() => {
            eprintln!("(no answer on standard input: pass --yes to run without asking)");
            Err(CliError::NotConfirmed)
        }
        _ => Err(CliError::NotConfirmed),
    }
}
