//! What apply and destroy print while they run: the plan, one report per state change of a
//! resource (marked with the plan's symbol for its action: `+` create, `~` update, `-`
//! destroy; the outcome in words), and a summary: the failures, the steps that took
//! noticeable time, and one line saying what happened. Three shapes, chosen once: live
//! spinners on a terminal (indicatif), one timestamped line per change for CI logs, or JSON
//! lines (`--json`).

use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::apply::{Event, Op, Report, Step};
use crate::plan::Plan;
use crate::render::human::{self, Style};
use crate::render::{FORMAT_VERSION, PlanDoc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Live progress: stdout is a terminal.
    Live,
    /// One plain line per state change, with the time since the start.
    Lines,
    /// One JSON object per line.
    Json,
}

pub struct Progress {
    mode: Mode,
    style: Style,
    verb: &'static str,
    started: Instant,
    live: Option<Live>,
    waits: WaitLines,
}

/// Off a terminal, a wait's line is printed when what it says changes, not on every poll:
/// the state without its elapsed-time suffix, and at most every [`WaitLines::HEARTBEAT`]
/// while it stays the same (a CI log shows the run is alive, not 78 identical lines).
#[derive(Default)]
struct WaitLines {
    last: std::collections::HashMap<String, (String, Instant)>,
}

impl WaitLines {
    const HEARTBEAT: Duration = Duration::from_secs(30);

    /// Whether `message` about `address`, seen at `now`, gets a line.
    fn should_print(&mut self, address: &str, message: &str, now: Instant) -> bool {
        let state = without_elapsed(message).to_owned();
        match self.last.get(address) {
            Some((last, at)) if *last == state && now.duration_since(*at) < Self::HEARTBEAT => {
                false
            }
            _ => {
                self.last.insert(address.to_owned(), (state, now));
                true
            }
        }
    }
}

/// `waiting for X: pending (35s)` → `waiting for X: pending`.
fn without_elapsed(message: &str) -> &str {
    match message.rfind(" (") {
        Some(i)
            if message.ends_with(')')
                && humantime::parse_duration(&message[i + 2..message.len() - 1]).is_ok() =>
        {
            &message[..i]
        }
        _ => message,
    }
}

struct Live {
    multi: MultiProgress,
    overall: ProgressBar,
    running: Vec<(String, Op, ProgressBar)>,
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

/// The plan's symbol for the operation, so a `-` is always a deletion, never a failure.
fn op_symbol(op: Op) -> &'static str {
    match op {
        Op::Create => "+",
        Op::Update => "~",
        Op::Delete => "-",
    }
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Create => "create",
        Op::Update => "update",
        Op::Delete => "delete",
    }
}

fn json_line(mut v: Value) {
    v["format_version"] = json!(FORMAT_VERSION);
    println!("{v}");
}

impl Progress {
    pub fn new(mode: Mode, style: Style, verb: &'static str) -> Progress {
        Progress {
            mode,
            style,
            verb,
            started: Instant::now(),
            live: None,
            waits: WaitLines::default(),
        }
    }

    pub fn verb(&self) -> &'static str {
        self.verb
    }

    /// The plan about to be executed. `target`: what it acts on, for the header; its region
    /// prices the monthly cost.
    pub fn plan(&self, plan: &Plan, target: crate::render::Target, spec: &crate::spec::Spec) {
        let region = target.region.clone();
        let doc = PlanDoc::new(plan)
            .priced(plan, &region, &spec.cost)
            .targeted(target)
            .reading(spec);
        match self.mode {
            Mode::Json => json_line(json!({"type": "plan", "plan": doc})),
            Mode::Live | Mode::Lines => print!("{}", human::render(&doc, self.style)),
        }
    }

    /// The executor starts now; `steps` operations are coming.
    pub fn start(&mut self, steps: usize) {
        self.started = Instant::now();
        let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        match self.mode {
            Mode::Json => json_line(json!({"type": "start", "time": now, "operations": steps})),
            Mode::Lines => println!("{} started at {now}: {steps} operation(s).", self.verb),
            Mode::Live => {
                println!();
                let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
                let overall = multi.add(ProgressBar::new(steps as u64));
                overall.set_style(
                    ProgressStyle::with_template("{bar:30} {pos}/{len} done  [{elapsed}]")
                        .expect("a valid template"),
                );
                overall.enable_steady_tick(Duration::from_millis(200));
                self.live = Some(Live {
                    multi,
                    overall,
                    running: Vec::new(),
                });
            }
        }
    }

    pub fn event(&mut self, e: &Event) {
        let at = secs(self.started.elapsed());
        match (self.mode, e) {
            (Mode::Json, Event::Started(s)) => json_line(json!({
                "type": "started", "address": s.address.to_string(),
                "operation": op_name(s.op), "elapsed_s": at,
            })),
            (Mode::Json, Event::Finished(s, took, result)) => json_line(json!({
                "type": "finished", "address": s.address.to_string(),
                "operation": op_name(s.op), "elapsed_s": at, "duration_s": secs(*took),
                "ok": result.is_ok(), "error": result.err().map(|e| e.to_string()),
            })),
            (Mode::Json, Event::Waiting(address, message)) => json_line(json!({
                "type": "waiting", "address": address.to_string(), "message": message, "elapsed_s": at,
            })),
            (Mode::Lines, Event::Waiting(address, message)) => {
                if self
                    .waits
                    .should_print(&address.to_string(), message, Instant::now())
                {
                    println!("+{at:.1}s  {address}: {message}")
                }
            }
            (Mode::Lines, Event::Started(s)) => {
                println!(
                    "+{at:.1}s  {} {}: {}…",
                    op_symbol(s.op),
                    s.address,
                    s.op.progressive()
                )
            }
            (Mode::Lines, Event::Finished(s, took, result)) => println!(
                "+{at:.1}s  {} {}",
                op_symbol(s.op),
                finished_text(s, *took, *result, self.style)
            ),
            (Mode::Json, Event::Stopping { in_flight }) => json_line(json!({
                "type": "stopping", "in_flight": in_flight, "elapsed_s": at,
            })),
            (_, Event::Stopping { in_flight }) => {
                let text = stopping_text(self.verb, *in_flight);
                match self.live.as_ref() {
                    Some(live) => live.multi.suspend(|| eprintln!("{text}")),
                    None => eprintln!("{text}"),
                }
            }
            (Mode::Live, e) => self.live_event(e),
        }
        let _ = std::io::stdout().flush();
    }

    fn live_event(&mut self, e: &Event) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        match e {
            Event::Waiting(address, message) => {
                let address = address.to_string();
                if let Some((_, _, bar)) = live.running.iter().find(|(a, _, _)| *a == address) {
                    // The spinner shows its own elapsed time.
                    bar.set_message(format!("{address}: {}", without_elapsed(message)));
                }
            }
            Event::Started(s) => {
                let bar = live.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                        .expect("a valid template"),
                );
                bar.set_message(format!(
                    "{} {}: {}",
                    self.style.sign(op_symbol(s.op)),
                    s.address,
                    s.op.progressive()
                ));
                bar.enable_steady_tick(Duration::from_millis(120));
                live.running.push((s.address.to_string(), s.op, bar));
            }
            Event::Stopping { .. } => {}
            Event::Finished(s, took, result) => {
                let address = s.address.to_string();
                if let Some(i) = live
                    .running
                    .iter()
                    .position(|(a, op, _)| *a == address && *op == s.op)
                {
                    let (_, _, bar) = live.running.remove(i);
                    bar.finish_and_clear();
                    live.multi.remove(&bar);
                }
                let _ = live.multi.println(format!(
                    "{} {}",
                    self.style.sign(op_symbol(s.op)),
                    finished_text(s, *took, *result, self.style)
                ));
                live.overall.inc(1);
            }
        }
    }

    /// The summary: the failures first, then the steps that took noticeable time (at
    /// least [`NOTICEABLE`], the [`SLOWEST`] slowest), then one line saying what happened.
    /// Returns whether everything succeeded.
    pub fn finish(&mut self, report: &Report) -> bool {
        if let Some(live) = self.live.take() {
            live.overall.finish_and_clear();
            let _ = live.multi.clear();
        }
        let verb = self.verb;
        if self.mode == Mode::Json {
            json_line(json!({
                "type": "summary",
                "ok": report.ok(),
                "elapsed_s": secs(report.elapsed),
                "done": report.done.iter().map(|(s, d)| json!({
                    "address": s.address.to_string(), "operation": op_name(s.op), "duration_s": secs(*d),
                })).collect::<Vec<_>>(),
                "failed": report.failed.iter().map(|(s, e)| json!({
                    "address": s.address.to_string(), "operation": op_name(s.op), "error": e.to_string(),
                })).collect::<Vec<_>>(),
                "skipped": report.skipped.iter().map(|s| json!({
                    "address": s.address.to_string(), "operation": op_name(s.op),
                })).collect::<Vec<_>>(),
                "interrupted": report.interrupted,
                "not_started": report.not_started.iter().map(|s| json!({
                    "address": s.address.to_string(), "operation": op_name(s.op),
                })).collect::<Vec<_>>(),
            }));
            return report.ok();
        }
        if !report.ok() {
            eprintln!();
            for (s, e) in &report.failed {
                eprintln!(
                    "{} {}: {} {}: {e}",
                    self.style.sign(op_symbol(s.op)),
                    s.address,
                    s.op.progressive(),
                    self.style.bold("FAILED")
                );
            }
            for s in &report.skipped {
                eprintln!("  skipped: {} (needs a failed step)", s.address);
            }
            for s in &report.not_started {
                eprintln!("  not started: {} ({})", s.address, s.op.progressive());
            }
        }
        let slow = slowest(report);
        if !slow.is_empty() {
            println!("\nSlowest steps:");
            for (s, d) in slow {
                println!(
                    "  {:>7}  {} {} {}",
                    elapsed(*d),
                    op_symbol(s.op),
                    s.address,
                    s.op.past()
                );
            }
        }
        let line = outcome_line(verb, report);
        if report.ok() {
            println!("\n{}", self.style.bold(&line));
            return true;
        }
        eprintln!("\n{}", self.style.bold(&line));
        eprintln!(
            "Run `prefect-ecs {verb}` again once the cause is fixed: it continues from what exists."
        );
        false
    }
}

/// A step that took less is not worth a line of the summary.
const NOTICEABLE: Duration = Duration::from_secs(1);
/// At most this many steps are listed as slow.
const SLOWEST: usize = 10;

fn slowest(report: &Report) -> Vec<&(Step, Duration)> {
    let mut done: Vec<&(Step, Duration)> = report
        .done
        .iter()
        .filter(|(_, d)| *d >= NOTICEABLE)
        .collect();
    done.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.address.cmp(&b.0.address)));
    done.truncate(SLOWEST);
    done
}

/// `Apply complete: 3 added, 1 changed, 1 destroyed (28 operations, 2m14s).`, or what failed.
fn outcome_line(verb: &str, report: &Report) -> String {
    let count = |op: Op| report.done.iter().filter(|(s, _)| s.op == op).count();
    let counts = format!(
        "{} added, {} changed, {} destroyed",
        count(Op::Create),
        count(Op::Update),
        count(Op::Delete)
    );
    let took = elapsed(report.elapsed);
    let ops = report.done.len();
    let noun = if ops == 1 { "operation" } else { "operations" };
    if report.ok() {
        return format!(
            "{} complete: {counts} ({ops} {noun}, {took}).",
            capitalize(verb)
        );
    }
    let how = if report.interrupted {
        "interrupted"
    } else {
        "failed"
    };
    format!(
        "{} {how} after {took}: {counts}; {} failed, {} skipped, {} not started.",
        capitalize(verb),
        report.failed.len(),
        report.skipped.len(),
        report.not_started.len()
    )
}

/// `0.2s`, `28.4s`, `2m14s`.
fn elapsed(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = d.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

/// What a Ctrl-C does to the run, said at once.
fn stopping_text(verb: &str, in_flight: usize) -> String {
    format!(
        "Interrupt received: finishing {in_flight} operation(s) in flight, starting nothing new; what only waits stops waiting now (the next {verb} picks it up). Ctrl-C again to exit now."
    )
}

/// A step's end. A failure shows the error's first line only: the whole of it, with any
/// diagnosis, is in the summary, once.
fn finished_text(
    s: &Step,
    took: Duration,
    result: Result<(), &crate::apply::ProviderError>,
    style: Style,
) -> String {
    match result {
        Ok(()) => format!("{}: {} ({})", s.address, s.op.past(), elapsed(took)),
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let more = if text.lines().nth(1).is_some() {
                " (more below)"
            } else {
                ""
            };
            format!(
                "{}: {} {} after {}: {first}{more}",
                s.address,
                s.op.progressive(),
                style.bold("FAILED"),
                elapsed(took)
            )
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::ProviderError;
    use crate::model::{Address, Kind};

    fn step(op: Op, name: &str) -> Step {
        Step {
            index: 0,
            change: 0,
            op,
            address: Address::new(Kind::LogGroup, name),
        }
    }

    /// Issue 15, item 9: a green `+` on "destroyed", a red `-` on "creating FAILED", a
    /// 36-line list of durations after a 0.2 s apply, and no line saying what happened.
    #[test]
    fn the_summary_says_what_happened_and_lists_only_slow_steps() {
        let ms = Duration::from_millis;
        let mut report = Report {
            done: (0..30)
                .map(|i| (step(Op::Create, &format!("fast{i}")), ms(5)))
                .chain([
                    (step(Op::Update, "changed"), ms(1500)),
                    (step(Op::Delete, "gone"), ms(12_000)),
                ])
                .collect(),
            failed: Vec::new(),
            skipped: Vec::new(),
            not_started: Vec::new(),
            interrupted: false,
            elapsed: ms(134_000),
        };
        assert_eq!(
            outcome_line("apply", &report),
            "Apply complete: 30 added, 1 changed, 1 destroyed (32 operations, 2m14s)."
        );
        let slow: Vec<String> = slowest(&report)
            .iter()
            .map(|(s, d)| format!("{} {}", s.address, elapsed(*d)))
            .collect();
        assert_eq!(slow, ["log_group.gone 12.0s", "log_group.changed 1.5s"]);

        report.failed.push((
            step(Op::Create, "bad"),
            ProviderError("AccessDenied\nhint".into()),
        ));
        report.skipped.push(step(Op::Create, "after-bad"));
        assert_eq!(
            outcome_line("apply", &report),
            "Apply failed after 2m14s: 30 added, 1 changed, 1 destroyed; 1 failed, 1 skipped, 0 not started."
        );

        // The action's own symbol, the outcome in words, the error's first line only.
        assert_eq!(op_symbol(Op::Delete), "-");
        assert_eq!(op_symbol(Op::Create), "+");
        let (bad, e) = &report.failed[0];
        let text = finished_text(bad, ms(200), Err(e), Style::default());
        assert_eq!(
            text,
            "log_group.bad: creating FAILED after 0.2s: AccessDenied (more below)"
        );
        assert_eq!(
            finished_text(
                &step(Op::Delete, "gone"),
                ms(12_000),
                Ok(()),
                Style::default()
            ),
            "log_group.gone: destroyed (12.0s)"
        );
    }

    /// Issue 15, item 8: off a terminal a wait printed 78 identical lines in 15 s.
    #[test]
    fn a_wait_gets_a_line_when_its_state_changes_and_a_heartbeat_every_30_s() {
        let mut waits = WaitLines::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_millis(s);
        let nat = "nat_gateway.nat[0]";
        let mut printed = Vec::new();
        for ms in (0..15_000).step_by(200) {
            let message = format!(
                "waiting for NAT gateway nat-1 available: pending ({}s)",
                ms / 1000
            );
            if waits.should_print(nat, &message, at(ms)) {
                printed.push(ms);
            }
        }
        assert_eq!(printed, [0], "one line while the state stays the same");
        assert!(waits.should_print(
            nat,
            "waiting for NAT gateway nat-1 available: available (15s)",
            at(15_000)
        ));
        assert!(!waits.should_print(
            nat,
            "waiting for NAT gateway nat-1 available: available (16s)",
            at(16_000)
        ));
        assert!(
            waits.should_print(
                nat,
                "waiting for NAT gateway nat-1 available: available (46s)",
                at(46_000)
            ),
            "a heartbeat after 30 s of the same state"
        );
        // Another resource's wait has lines of its own.
        assert!(waits.should_print(
            "ecs_service.w",
            "waiting for ECS service w: 0/1 running (1s)",
            at(46_000)
        ));
        assert_eq!(
            without_elapsed("rollout IN_PROGRESS (draining)"),
            "rollout IN_PROGRESS (draining)"
        );
    }
}
