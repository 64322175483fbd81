use multisite::args::{self, Command};
use multisite::{CliError, Fleet};
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
        None => shared::Topology::from_env().map_err(|e| CliError::Topology(e.to_string()))?,
    };
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
    }
    Ok(())
}
