// The drill's future nests the handlers' futures (each nesting parallel SDK calls); its type is
// deeper than rustc's default query depth allows when laid out.
#![recursion_limit = "512"]

use drill::{JsonOut, Mode};
use std::io::Write;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let options = match drill::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(message) if message == drill::args::USAGE => {
            print!("{message}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("drill: {message}");
            return ExitCode::from(2);
        }
    };
    shared::metrics::redirect_emit(Box::new(std::io::sink()));
    let json_to_stdout = options.json == Some(JsonOut::Stdout);
    let human: Box<dyn Write + Send> =
        if json_to_stdout { Box::new(std::io::stderr()) } else { Box::new(std::io::stdout()) };

    if let Mode::Plan { topology, home_region } = &options.mode {
        return match drill::plan::run(topology, options.fail_region.as_deref(), home_region.as_deref(), options.planned)
            .await
        {
            Ok(report) => {
                let mut human = human;
                let _ = write!(human, "{}", report.render());
                if let Err(code) = write_json(&options.json, &report) {
                    return code;
                }
                if report.ok() { ExitCode::SUCCESS } else { ExitCode::from(1) }
            }
            Err(e) => {
                eprintln!("drill --plan: {e}");
                ExitCode::from(2)
            }
        };
    }

    let keep_running = options.keep_running;
    let report = match drill::run(&options, human).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("drill: setup error: {e}");
            return ExitCode::from(2);
        }
    };
    if options.mode == Mode::SetupOnly {
        return ExitCode::SUCCESS;
    }
    if !keep_running {
        let summary = report.render_summary();
        if json_to_stdout {
            eprint!("{summary}");
        } else {
            print!("{summary}");
        }
    }
    if let Err(code) = write_json(&options.json, &report) {
        return code;
    }
    if let Some(path) = &options.html {
        if let Err(e) = drill::write_html(&report, path) {
            eprintln!("drill: {e}");
            return ExitCode::from(2);
        }
    }
    if report.passed { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn write_json<T: serde::Serialize>(json: &Option<JsonOut>, report: &T) -> Result<(), ExitCode> {
    let text = serde_json::to_string_pretty(report).unwrap_or_default();
    match json {
        None => Ok(()),
        Some(JsonOut::Stdout) => {
            println!("{text}");
            Ok(())
        }
        Some(JsonOut::File(path)) => std::fs::write(path, text + "\n").map_err(|e| {
            eprintln!("drill: cannot write the JSON report to {path}: {e}");
            ExitCode::from(2)
        }),
    }
}
