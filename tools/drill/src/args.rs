//! Command-line options. Hand-rolled (no parser crate): a dozen flags do not justify a dependency
//! and its build time in a workspace where every crate is compiled twice (debug tests, release).

use std::fmt::Write as _;

/// The Regions `--regions N` picks from, in this order (the seed's three first).
pub const DEFAULT_REGIONS: [&str; 6] =
    ["us-east-1", "eu-west-1", "ap-southeast-1", "us-west-2", "eu-central-1", "ap-northeast-1"];

/// What the drill does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The full drill against a local emulator it starts itself (the default).
    Emulator,
    /// Build the deployment in a fresh emulator, print how to reach it and keep it running (for
    /// `cargo lambda watch` and manual exploration); no outage.
    SetupOnly,
    /// Against a real deployment: print what failover and scaler would do, change nothing.
    Plan { topology: String, home_region: Option<String> },
}

/// Where the JSON report goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonOut {
    Stdout,
    File(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub mode: Mode,
    pub regions: Vec<String>,
    /// The Region the drill takes down (default: the first).
    pub fail_region: Option<String>,
    /// Global Table replication delay between every Region pair, ms.
    pub replication_delay_ms: u64,
    /// A planned drill: switchover (no data loss), the Region is drained before it goes down.
    pub planned: bool,
    pub keep_running: bool,
    pub json: Option<JsonOut>,
    /// Steady traffic before the outage, ms.
    pub traffic_ms: u64,
    /// Pause between two writes of one Region's writer, ms.
    pub write_interval_ms: u64,
    pub rpo_budget_ms: u64,
    /// failover_policy.cooldown_seconds of the drill's topology.
    pub cooldown_seconds: u64,
    /// Also print every handler report (JSON) as it comes.
    pub verbose: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            mode: Mode::Emulator,
            regions: DEFAULT_REGIONS[..3].iter().map(|r| r.to_string()).collect(),
            fail_region: None,
            replication_delay_ms: 100,
            planned: false,
            keep_running: false,
            json: None,
            traffic_ms: 2_000,
            write_interval_ms: 20,
            rpo_budget_ms: 2_000,
            cooldown_seconds: 5,
            verbose: false,
        }
    }
}

impl Options {
    /// The Region taken down.
    pub fn failing(&self) -> &str {
        self.fail_region.as_deref().unwrap_or_else(|| self.regions.first().map(String::as_str).unwrap_or("us-east-1"))
    }
}

pub const USAGE: &str = "\
drill: a disaster-recovery game day in one command, with measured RTO and RPO

USAGE:
    drill [OPTIONS]                          the full drill against a local emulator it starts
    drill --plan --topology FILE [OPTIONS]   against a real deployment: print the plans, change nothing
    drill --setup-only                       build the deployment in an emulator and keep it running

OPTIONS:
    --regions N|R1,R2,...       Regions of the deployment: a count (2-6, from us-east-1, eu-west-1,
                                ap-southeast-1, us-west-2, eu-central-1, ap-northeast-1) or a list [3]
    --fail REGION               the Region taken down [the first Region]
    --replication-delay-ms MS   Global Table replication delay, every Region pair [100]
    --planned                   planned drill: switchover (no data loss) before the Region goes down
                                [default: unplanned failover with AllowDataLoss]
    --traffic-ms MS             steady traffic before the outage [2000]
    --write-interval-ms MS      pause between two writes of each Region's writer [20]
    --rpo-budget-ms MS          the topology's RPO budget [2000]
    --cooldown-seconds S        the topology's failover cool-down (failback waits for it) [5]
    --keep-running              keep the emulator running afterwards (prints how to reach it)
    --json[=FILE]               write the report as JSON to FILE, or to stdout (the human report
                                then goes to stderr)
    --verbose                   print every handler report as it comes
    --plan                      plan mode (needs --topology; real credentials, standard AWS chain)
    --topology FILE             the deployment's topology JSON (plan mode)
    --home-region REGION        plan mode: the Region the functions run in [first survivor]
    -h, --help                  this text

Exit status: 0 when every check passed, 1 when a check failed, 2 on bad usage or a setup error.
";

/// Parses the arguments (without the program name).
pub fn parse<I, S>(args: I) -> Result<Options, String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut options = Options::default();
    let mut plan = false;
    let mut setup_only = false;
    let mut topology = None;
    let mut home_region = None;
    let mut args = args.into_iter().map(Into::into).peekable();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            args.next().ok_or_else(|| format!("{name} needs a value (see --help)"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Err(USAGE.to_owned()),
            "--regions" => options.regions = parse_regions(&value("--regions")?)?,
            "--fail" | "--fail-region" => options.fail_region = Some(value("--fail")?),
            "--replication-delay-ms" => {
                options.replication_delay_ms = number(&flag, &value(&flag)?, 0..=60_000)?;
            }
            "--planned" => options.planned = true,
            "--unplanned" => options.planned = false,
            "--traffic-ms" => options.traffic_ms = number(&flag, &value(&flag)?, 200..=60_000)?,
            "--write-interval-ms" => options.write_interval_ms = number(&flag, &value(&flag)?, 1..=10_000)?,
            "--rpo-budget-ms" => options.rpo_budget_ms = number(&flag, &value(&flag)?, 1..=600_000)?,
            "--cooldown-seconds" => options.cooldown_seconds = number(&flag, &value(&flag)?, 0..=300)?,
            "--keep-running" => options.keep_running = true,
            "--json" => {
                options.json = Some(match inline {
                    Some(path) if !path.is_empty() && path != "-" => JsonOut::File(path),
                    _ => JsonOut::Stdout,
                })
            }
            "--verbose" | "-v" => options.verbose = true,
            "--plan" => plan = true,
            "--setup-only" => setup_only = true,
            "--topology" => topology = Some(value("--topology")?),
            "--home-region" => home_region = Some(value("--home-region")?),
            other => return Err(format!("unknown argument `{other}` (see --help)")),
        }
    }
    if plan && setup_only {
        return Err("--plan and --setup-only exclude each other".into());
    }
    if plan {
        let topology = topology.ok_or("--plan needs --topology FILE: the deployment's topology JSON")?;
        options.mode = Mode::Plan { topology, home_region };
    } else {
        if topology.is_some() || home_region.is_some() {
            return Err("--topology and --home-region only apply with --plan".into());
        }
        if setup_only {
            options.mode = Mode::SetupOnly;
        }
        if let Some(fail) = &options.fail_region {
            if !options.regions.contains(fail) {
                return Err(format!("--fail {fail}: not one of the drill's Regions ({})", options.regions.join(", ")));
            }
        }
    }
    Ok(options)
}

fn number(flag: &str, text: &str, range: std::ops::RangeInclusive<u64>) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!("{flag} {text}: expected a whole number from {} to {}", range.start(), range.end())),
    }
}

fn parse_regions(text: &str) -> Result<Vec<String>, String> {
    if let Ok(n) = text.trim().parse::<usize>() {
        if !(2..=DEFAULT_REGIONS.len()).contains(&n) {
            return Err(format!("--regions {n}: a drill needs 2 to {} Regions", DEFAULT_REGIONS.len()));
        }
        return Ok(DEFAULT_REGIONS[..n].iter().map(|r| r.to_string()).collect());
    }
    let regions: Vec<String> = text.split(',').map(|r| r.trim().to_owned()).filter(|r| !r.is_empty()).collect();
    let mut problems = String::new();
    if regions.len() < 2 {
        let _ = write!(problems, "at least 2 Regions are needed; ");
    }
    for (i, r) in regions.iter().enumerate() {
        if regions[..i].contains(r) {
            let _ = write!(problems, "{r} is listed twice; ");
        }
    }
    if problems.is_empty() {
        Ok(regions)
    } else {
        Err(format!("--regions {text}: {}", problems.trim_end_matches("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds_three_regions_failing_the_first() {
        let o = parse(Vec::<String>::new()).expect("defaults");
        assert_eq!(o.regions, ["us-east-1", "eu-west-1", "ap-southeast-1"]);
        assert_eq!(o.failing(), "us-east-1");
        assert_eq!(o.mode, Mode::Emulator);
        assert!(!o.planned);
    }

    #[test]
    fn parses_every_option() {
        let o = parse([
            "--regions",
            "2",
            "--fail=eu-west-1",
            "--replication-delay-ms",
            "500",
            "--planned",
            "--json=out.json",
            "--keep-running",
            "--cooldown-seconds",
            "1",
        ])
        .expect("parsed");
        assert_eq!(o.regions, ["us-east-1", "eu-west-1"]);
        assert_eq!(o.failing(), "eu-west-1");
        assert_eq!(o.replication_delay_ms, 500);
        assert!(o.planned && o.keep_running);
        assert_eq!(o.json, Some(JsonOut::File("out.json".into())));
        assert_eq!(o.cooldown_seconds, 1);
        assert_eq!(parse(["--json"]).expect("json").json, Some(JsonOut::Stdout));
    }

    #[test]
    fn plan_mode_needs_a_topology() {
        assert!(parse(["--plan"]).expect_err("no topology").contains("--topology"));
        let o = parse(["--plan", "--topology", "t.json", "--fail", "eu-west-1"]).expect("plan");
        assert_eq!(o.mode, Mode::Plan { topology: "t.json".into(), home_region: None });
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        assert!(parse(["--regions", "1"]).is_err());
        assert!(parse(["--regions", "us-east-1,us-east-1"]).expect_err("dup").contains("twice"));
        assert!(parse(["--fail", "sa-east-1"]).expect_err("not in").contains("not one of"));
        assert!(parse(["--replication-delay-ms", "soon"]).is_err());
        assert!(parse(["--frobnicate"]).expect_err("unknown").contains("unknown argument"));
    }
}
