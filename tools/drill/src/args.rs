//! Command-line options. Hand-rolled (no parser crate): a dozen flags do not justify a dependency
//! and its build time in a workspace where every crate is compiled twice (debug tests, release).

use std::fmt::Write as _;

/// The Regions `--regions N` picks from, in this order (the seed's three first).
pub const DEFAULT_REGIONS: [&str; 4] = ["us-east-1", "eu-west-1", "ap-southeast-1", "us-west-2"];

/// How many Regions template.yaml deploys (Region1..Region4; Region3 and Region4 optional): a
/// deployment the template cannot express cannot be deployed, so the drill builds no other.
pub const TEMPLATE_REGIONS: std::ops::RangeInclusive<usize> = 2..=4;

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

/// What happens to the deployment (emulator mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// One Region goes down, is evacuated and fails back.
    Default,
    /// The alarms of two Regions (the failing one and the next) go to ALARM at the same moment,
    /// delivered at once to their actors (different Regions), with min_healthy_regions = Regions - 1:
    /// exactly one is evacuated, the other refused; then both recover.
    Simultaneous,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub mode: Mode,
    pub scenario: Scenario,
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
    /// The topology's RTO objective (`rto_objective_seconds`): what the measured RTO is judged by.
    pub rto_objective_seconds: u64,
    /// failover_policy.cooldown_seconds of the drill's topology.
    pub cooldown_seconds: u64,
    /// Also print every handler report (JSON) as it comes.
    pub verbose: bool,
    /// Route 53's control plane fails for the whole outage (whichever Region signs), not only the
    /// failing Region's APIs.
    pub route53_control_plane_down: bool,
    /// How failover takes a Region out of routing.
    pub routing: shared::topology::RoutingBackend,
    /// Where the self-contained HTML report goes (`--html FILE`).
    pub html: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            mode: Mode::Emulator,
            scenario: Scenario::Default,
            regions: DEFAULT_REGIONS[..3].iter().map(|r| r.to_string()).collect(),
            fail_region: None,
            replication_delay_ms: 100,
            planned: false,
            keep_running: false,
            json: None,
            traffic_ms: 2_000,
            write_interval_ms: 20,
            rpo_budget_ms: 2_000,
            rto_objective_seconds: 300,
            cooldown_seconds: 5,
            verbose: false,
            route53_control_plane_down: false,
            routing: shared::topology::RoutingBackend::HealthCheck,
            html: None,
        }
    }
}

impl Options {
    /// The Region taken down.
    pub fn failing(&self) -> &str {
        self.fail_region.as_deref().unwrap_or_else(|| self.regions.first().map(String::as_str).unwrap_or("us-east-1"))
    }

    /// The Regions whose alarms the scenario sets to ALARM: the failing one, and with
    /// `--scenario simultaneous` the next one in priority order too.
    pub fn alarming(&self) -> Vec<String> {
        let failing = self.failing().to_owned();
        match self.scenario {
            Scenario::Default => vec![failing],
            Scenario::Simultaneous => {
                let i = self.regions.iter().position(|r| *r == failing).unwrap_or(0);
                vec![failing, self.regions[(i + 1) % self.regions.len()].clone()]
            }
        }
    }
}

pub const USAGE: &str = "\
drill: a disaster-recovery game day in one command, with measured RTO and RPO

USAGE:
    drill [OPTIONS]                          the full drill against a local emulator it starts
    drill --plan --topology FILE [OPTIONS]   against a real deployment: print the plans, change nothing
    drill --setup-only                       build the deployment in an emulator and keep it running

The handlers (provisioner, failover, scaler, lag-probe) run in-process, each signed with its
function's template.yaml role in the stack of the Region it runs in (rendered by the emulator for
the drill's deployment, sessions in target/drill/roles.json); set-up, traffic, CloudWatch and the
checks run as the administrator.

OPTIONS:
    --regions N|R1,R2,...       Regions of the deployment, 2 to 4 (what template.yaml deploys: Region1
                                to Region4): a count (from us-east-1, eu-west-1, ap-southeast-1,
                                us-west-2) or a list, in failover priority order [3]
    --fail REGION               the Region taken down [the first Region]
    --scenario NAME             default: the failing Region goes down, is evacuated and fails back;
                                simultaneous: two Regions alarm at once (needs 3 or more Regions;
                                min_healthy_regions = Regions - 1, so at most one may be
                                evacuated): the alarms of the --fail Region and the next one go to
                                ALARM at the same moment (SetAlarmState, no outage) and their
                                recorded events are delivered at once to their actors (failover
                                and scaler in each alarm's Region, two different Regions); checks
                                that exactly one Region is evacuated and the other's evacuation
                                Refused, the Aurora writer moved at most once and never into an
                                evacuated Region, and that the arbiter's fleet record equals the
                                world (health checks inverted exactly for evacuated Regions);
                                then both alarms go back to OK and everything recovers [default]
    --routing BACKEND           how failover takes a Region out of routing: health_check (force its
                                Route 53 health check unhealthy, a Route 53 control-plane call) or
                                arc (turn its Route 53 ARC routing control Off through the ARC
                                cluster's five Regional data-plane endpoints; the records are
                                guarded by RECOVERY_CONTROL health checks, and ARC's assertion
                                rule keeps min_healthy_regions controls On) [health_check]
    --route53-down              Route 53's control plane fails (HTTP 503 whichever Region signs; DNS
                                answers, TestDNSAnswer, keep working) from just before the outage,
                                and the failing Region's endpoint health check fails with it.
                                With --routing arc: nothing of failover needs Route 53, so the whole
                                outage, failback included, runs with it down (it answers again at
                                the end) and the checks are the default drill's. With health_check:
                                failover's forced inversion fails (retryable) and routing is left
                                to the endpoint health checks; Route 53 answers again before the
                                Region recovers, the scheduled reconcile finishes the inversion,
                                and the checks say so (alias: --route53-control-plane-down)
                                [default: a Regional outage; Route 53's control plane, global,
                                keeps answering]
    --replication-delay-ms MS   Global Table replication delay, every Region pair [100]
    --planned                   planned drill: switchover (no data loss) before the Region goes down
                                [default: unplanned failover with AllowDataLoss]
    --traffic-ms MS             steady traffic before the outage [2000]
    --write-interval-ms MS      pause between two writes of each Region's writer [20]
    --rpo-budget-ms MS          the topology's RPO budget [2000]
    --rto-objective-seconds S   the topology's RTO objective: the measured RTO (alarm -> every user
                                area answered by a survivor) is judged by it [300]
    --cooldown-seconds S        the topology's failover cool-down (failback waits for it) [5]
    --keep-running              keep the emulator running afterwards (prints how to reach it)
    --json[=FILE]               write the report as JSON to FILE, or to stdout (the human report
                                then goes to stderr)
    --html FILE                 write the report as one self-contained HTML page to FILE: charts of
                                the run (DNS share per Region, Aurora writer, capacities,
                                replication lag) with the outage, detection, actions and failback
                                marked; RTO and RPO; the checks
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
            "--scenario" => {
                options.scenario = match value("--scenario")?.as_str() {
                    "default" => Scenario::Default,
                    "simultaneous" => Scenario::Simultaneous,
                    other => return Err(format!("--scenario {other}: expected `default` or `simultaneous`")),
                }
            }
            "--replication-delay-ms" => {
                options.replication_delay_ms = number(&flag, &value(&flag)?, 0..=60_000)?;
            }
            "--planned" => options.planned = true,
            "--unplanned" => options.planned = false,
            "--traffic-ms" => options.traffic_ms = number(&flag, &value(&flag)?, 200..=60_000)?,
            "--write-interval-ms" => options.write_interval_ms = number(&flag, &value(&flag)?, 1..=10_000)?,
            "--rpo-budget-ms" => options.rpo_budget_ms = number(&flag, &value(&flag)?, 1..=600_000)?,
            "--rto-objective-seconds" => {
                options.rto_objective_seconds = number(&flag, &value(&flag)?, 1..=86_400)?;
            }
            "--html" => {
                let path = value("--html")?;
                if path.is_empty() {
                    return Err("--html needs a file name".into());
                }
                options.html = Some(path);
            }
            "--cooldown-seconds" => options.cooldown_seconds = number(&flag, &value(&flag)?, 0..=300)?,
            "--keep-running" => options.keep_running = true,
            "--json" => {
                options.json = Some(match inline {
                    Some(path) if !path.is_empty() && path != "-" => JsonOut::File(path),
                    _ => JsonOut::Stdout,
                })
            }
            "--verbose" | "-v" => options.verbose = true,
            "--route53-down" | "--route53-control-plane-down" => options.route53_control_plane_down = true,
            "--routing" => {
                options.routing = match value("--routing")?.as_str() {
                    "health_check" => shared::topology::RoutingBackend::HealthCheck,
                    "arc" => shared::topology::RoutingBackend::Arc,
                    other => return Err(format!("--routing {other}: expected `health_check` or `arc`")),
                }
            }
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
        if options.scenario == Scenario::Simultaneous {
            if options.regions.len() < 3 {
                return Err(format!(
                    "--scenario simultaneous needs 3 or more Regions (two alarm, min_healthy_regions = Regions - 1); got {}",
                    options.regions.len()
                ));
            }
            if options.planned || options.route53_control_plane_down {
                return Err("--scenario simultaneous takes neither --planned nor --route53-down".into());
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
    let (min, max) = (*TEMPLATE_REGIONS.start(), *TEMPLATE_REGIONS.end());
    if let Ok(n) = text.trim().parse::<usize>() {
        if !TEMPLATE_REGIONS.contains(&n) {
            return Err(format!(
                "--regions {n}: template.yaml deploys {min} to {max} Regions (Region1 to Region{max}), so a drill has {min} to {max}"
            ));
        }
        return Ok(DEFAULT_REGIONS[..n].iter().map(|r| r.to_string()).collect());
    }
    let regions: Vec<String> = text.split(',').map(|r| r.trim().to_owned()).filter(|r| !r.is_empty()).collect();
    let mut problems = String::new();
    if !TEMPLATE_REGIONS.contains(&regions.len()) {
        let _ = write!(
            problems,
            "{} Region{} listed, template.yaml deploys {min} to {max} (Region1 to Region{max}); ",
            regions.len(),
            if regions.len() == 1 { "" } else { "s" }
        );
    }
    for (i, r) in regions.iter().enumerate() {
        if !shared::topology::is_region_name(r) {
            let _ = write!(problems, "`{r}` is not a Region name; ");
        }
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
        assert_eq!((o.rto_objective_seconds, o.html.as_deref()), (300, None), "defaults");
        let html = parse(["--html", "r.html", "--rto-objective-seconds=60"]).expect("html");
        assert_eq!((html.rto_objective_seconds, html.html.as_deref()), (60, Some("r.html")));
        assert!(parse(["--rto-objective-seconds", "0"]).is_err(), "an objective of 0 s is no objective");
        assert!(parse(["--html"]).expect_err("no file").contains("--html"));
        assert_eq!(parse(["--json"]).expect("json").json, Some(JsonOut::Stdout));
        assert!(parse(["--route53-control-plane-down"]).expect("flag").route53_control_plane_down);
        let arc = parse(["--routing", "arc", "--route53-down"]).expect("flags");
        assert!(arc.route53_control_plane_down);
        assert_eq!(arc.routing, shared::topology::RoutingBackend::Arc);
        assert_eq!(o.routing, shared::topology::RoutingBackend::HealthCheck);
        assert!(parse(["--routing", "dns"]).expect_err("unknown backend").contains("health_check"));
        assert!(!o.route53_control_plane_down);
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
        assert!(parse(["--regions", "5"]).expect_err("5").contains("2 to 4"));
        assert!(
            parse(["--regions", "us-east-1,eu-west-1,ap-southeast-1,us-west-2,eu-central-1"])
                .expect_err("5 listed")
                .contains("2 to 4")
        );
        assert_eq!(parse(["--regions", "4"]).expect("4").regions.len(), 4);
        assert!(parse(["--regions", "us-east-1,mars"]).expect_err("bad name").contains("not a Region name"));
        assert!(parse(["--regions", "us-east-1,us-east-1"]).expect_err("dup").contains("twice"));
        assert!(parse(["--fail", "sa-east-1"]).expect_err("not in").contains("not one of"));
        assert!(parse(["--replication-delay-ms", "soon"]).is_err());
        assert!(parse(["--frobnicate"]).expect_err("unknown").contains("unknown argument"));
        assert!(parse(["--scenario", "both"]).expect_err("scenario").contains("simultaneous"));
        assert!(parse(["--scenario", "simultaneous", "--regions", "2"]).expect_err("2 Regions").contains("3 or more"));
        let o = parse(["--scenario=simultaneous"]).expect("simultaneous");
        assert_eq!(o.scenario, Scenario::Simultaneous);
        assert_eq!(o.alarming(), ["us-east-1", "eu-west-1"]);
    }
}
