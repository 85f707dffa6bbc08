//! The framework: scenarios, contenders, interleaved rounds, statistics and the text table.
//!
//! A [`Scenario`] names one operation (fork and reap a child, run `/bin/true`, ...), the
//! [`Unit`] its results read in, and how many operations one batch performs. Its contenders each
//! do that operation their own way. The first one, the *floor*, is the cheapest known way (the
//! raw syscalls, or what std does); every other contender is reported as a ratio to it.
//!
//! Contenders run interleaved: round 1 times one batch of A, then B, then C; round 2 does the
//! same; and so on. A noisy moment of the machine (another process, a frequency change, a page
//! cache flush) then falls on every contender alike instead of on whichever ran in one block at
//! that time. The per-op figure of a round is its batch time divided by the batch size; the
//! report gives the median over the measured rounds and the p10–p90 spread.

use std::error::Error;
use std::fmt;
use std::io::{self, Write as _};
use std::time::{Duration, Instant};

/// What contenders and scenario builders fail with: any error, so a contender written against
/// another crate can use `?` on that crate's error type.
pub(crate) type BenchResult<T> = Result<T, Box<dyn Error>>;

/// The unit a scenario's results read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Time per op in µs: lower is better; a ratio of 2.00× means twice as slow as the floor.
    TimePerOp,
    /// Throughput in GB/s (10⁹ bytes per second), each op moving `bytes_per_op` bytes: higher is
    /// better; a ratio of 2.00× means twice as fast as the floor.
    Throughput {
        /// Bytes one op moves.
        bytes_per_op: u64,
    },
    /// Ops per second, in millions (`M/s`): higher is better; a ratio of 2.00× means twice the
    /// reference's rate.
    Rate,
    /// How far the measured process's resident memory rose above where it started, at its
    /// peak, in MiB (contenders made with [`Contender::measuring_memory`]): lower is better.
    PeakMemory,
}

impl Unit {
    /// The value of one round in this unit, from its time per op and what it measured.
    fn value(self, per_op: Duration, sample: Sample) -> f64 {
        // A batch never takes zero time; the clamp only keeps a throughput finite.
        let secs = per_op.as_secs_f64().max(1e-12);
        match self {
            Unit::PeakMemory => sample.peak_memory.unwrap_or(0) as f64 / (1 << 20) as f64,
            Unit::TimePerOp => secs * 1e6,
            Unit::Throughput { bytes_per_op } => bytes_per_op as f64 / secs / 1e9,
            Unit::Rate => 1.0 / secs / 1e6,
        }
    }

    /// The unit's symbol: `µs` or `GB/s`.
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Unit::TimePerOp => "µs",
            Unit::Throughput { .. } => "GB/s",
            Unit::Rate => "M/s",
            Unit::PeakMemory => "MiB",
        }
    }

    /// `value` with as many decimals as its size deserves, without the symbol.
    pub(crate) fn number(self, value: f64) -> String {
        match self {
            Unit::TimePerOp | Unit::PeakMemory if value >= 100.0 => format!("{value:.0}"),
            Unit::TimePerOp | Unit::PeakMemory if value >= 10.0 => format!("{value:.1}"),
            Unit::TimePerOp | Unit::Throughput { .. } | Unit::Rate | Unit::PeakMemory => {
                format!("{value:.2}")
            }
        }
    }

    /// What the ratio column means in this unit.
    pub(crate) fn ratio_meaning(self) -> &'static str {
        match self {
            Unit::TimePerOp => "time / floor time, lower is better",
            Unit::Throughput { .. } => "throughput / floor throughput, higher is better",
            Unit::Rate => "rate / reference rate, higher is better",
            Unit::PeakMemory => "peak / reference peak, lower is better",
        }
    }
}

/// What one batch measured.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sample {
    /// The time the batch's ops took.
    pub(crate) elapsed: Duration,
    /// For [`Unit::PeakMemory`]: the peak rise of resident memory during the batch, in bytes.
    pub(crate) peak_memory: Option<u64>,
}

/// One batch: performs `ops` operations and returns what it measured.
type Batch = Box<dyn FnMut(u64) -> BenchResult<Sample>>;

/// One way of doing a scenario's operation.
pub(crate) struct Contender {
    name: String,
    state: ContenderState,
}

enum ContenderState {
    Ready(Batch),
    Skipped(String),
}

impl Contender {
    /// A contender whose whole batch is timed by the harness: `batch(ops)` performs `ops`
    /// operations. Must not print (children forked inside would inherit the buffered text).
    pub(crate) fn timed(
        name: impl Into<String>,
        mut batch: impl FnMut(u64) -> BenchResult<()> + 'static,
    ) -> Contender {
        Contender::self_timed(name, move |ops| {
            let start = Instant::now();
            batch(ops)?;
            Ok(start.elapsed())
        })
    }

    /// A contender that times itself: `batch(ops)` performs `ops` operations and returns the time
    /// they took, leaving out its setup (forking an echo child, starting an interpreter).
    pub(crate) fn self_timed(
        name: impl Into<String>,
        mut batch: impl FnMut(u64) -> BenchResult<Duration> + 'static,
    ) -> Contender {
        Contender::measuring_memory(name, move |ops| {
            Ok(Sample {
                elapsed: batch(ops)?,
                peak_memory: None,
            })
        })
    }

    /// A contender that measures itself, memory included: `batch(ops)` returns the time and
    /// the peak rise of resident memory (for [`Unit::PeakMemory`] scenarios).
    pub(crate) fn measuring_memory(
        name: impl Into<String>,
        batch: impl FnMut(u64) -> BenchResult<Sample> + 'static,
    ) -> Contender {
        Contender {
            name: name.into(),
            state: ContenderState::Ready(Box::new(batch)),
        }
    }

    /// A contender that cannot run here (no `python3`, no `F_SETPIPE_SZ`); the report shows
    /// `reason` in its row.
    pub(crate) fn skipped(name: impl Into<String>, reason: impl Into<String>) -> Contender {
        Contender {
            name: name.into(),
            state: ContenderState::Skipped(reason.into()),
        }
    }
}

impl fmt::Debug for Contender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Contender");
        debug.field("name", &self.name);
        if let ContenderState::Skipped(reason) = &self.state {
            debug.field("skipped", reason);
        }
        debug.finish_non_exhaustive()
    }
}

/// One operation measured several ways, the floor first.
#[derive(Debug)]
pub(crate) struct Scenario {
    name: &'static str,
    op: &'static str,
    note: Option<&'static str>,
    unit: Unit,
    ops_per_batch: u64,
    contenders: Vec<Contender>,
    /// What the first contender is called in the report: "floor", or "reference".
    first_is: &'static str,
    /// At most this many rounds, for scenarios whose batches take seconds.
    max_rounds: Option<Rounds>,
    /// Each round is split into this many, each batch into as many smaller ones.
    interleave: u32,
    /// Targets one row's median should meet against another's, shown under the table.
    goals: Vec<Goal>,
}

/// A target for the ratio of two rows' medians: `contender`'s median divided by `versus`'s
/// must be at most `at_most` (for times: `contender` at most that many times as slow). The
/// report shows each goal's ratio, measured in the same run, and whether it was met.
#[derive(Debug, Clone)]
pub(crate) struct Goal {
    /// What the goal says, for the report: "ForkServer from a 1 GiB parent ≤ 1.5× ...".
    pub(crate) what: String,
    /// The row whose median is divided.
    pub(crate) contender: String,
    /// The row whose median divides.
    pub(crate) versus: String,
    /// The largest ratio that meets the goal.
    pub(crate) at_most: f64,
}

impl Scenario {
    /// A scenario called `name` whose one op is described by `op` (a sentence fragment, e.g.
    /// "fork, `_exit(0)` in the child, `waitpid` in the parent"), measured in `unit`, each batch
    /// doing `ops_per_batch` ops. `floor` is the contender every other is compared with.
    pub(crate) fn new(
        name: &'static str,
        op: &'static str,
        unit: Unit,
        ops_per_batch: u64,
        floor: Contender,
    ) -> Scenario {
        Scenario {
            name,
            op,
            note: None,
            unit,
            ops_per_batch: ops_per_batch.max(1),
            contenders: vec![floor],
            first_is: "floor",
            max_rounds: None,
            interleave: 1,
            goals: Vec::new(),
        }
    }

    /// Adds a contender, run after those added before it in every round.
    pub(crate) fn contender(mut self, contender: Contender) -> Scenario {
        self.contenders.push(contender);
        self
    }

    /// Adds a paragraph for the document: how to read the figures, what they depend on.
    pub(crate) fn note(mut self, note: &'static str) -> Scenario {
        self.note = Some(note);
        self
    }

    /// Marks the first contender as the *reference* rather than the floor: the figure the
    /// others are compared with (what users would otherwise use, Python's pool say) where no
    /// cheaper way than the contender under test is known.
    pub(crate) fn reference(mut self) -> Scenario {
        self.first_is = "reference";
        self
    }

    /// Runs at most `rounds` (warm-up and measured) however many the run asks for: for batches
    /// that take seconds.
    pub(crate) fn max_rounds(mut self, rounds: Rounds) -> Scenario {
        self.max_rounds = Some(rounds);
        self
    }

    /// Splits every round into `times` rounds of batches `times` smaller (as many ops in all),
    /// so the contenders take turns `times` as often: for figures the VM's slow and fast
    /// spells (tens of milliseconds long) would otherwise fall on one contender's batch and
    /// not on another's.
    pub(crate) fn interleave(mut self, times: u32) -> Scenario {
        self.interleave = times.max(1);
        self
    }

    /// Adds a goal: the median of the row named `contender` divided by that of the row named
    /// `versus` should be at most `at_most`. Both must name contenders of this scenario
    /// ([`Scenario::check_goals`]).
    pub(crate) fn goal(
        mut self,
        what: impl Into<String>,
        contender: impl Into<String>,
        versus: impl Into<String>,
        at_most: f64,
    ) -> Scenario {
        self.goals.push(Goal {
            what: what.into(),
            contender: contender.into(),
            versus: versus.into(),
            at_most,
        });
        self
    }

    /// Fails when a goal names a row the scenario does not have (a typo would otherwise only
    /// show as `n/a` after minutes of measuring).
    pub(crate) fn check_goals(&self) -> BenchResult<()> {
        for goal in &self.goals {
            for name in [&goal.contender, &goal.versus] {
                if !self.contenders.iter().any(|c| &c.name == name) {
                    return Err(format!(
                        "{}: goal {:?} names no contender {name:?}",
                        self.name, goal.what
                    )
                    .into());
                }
            }
        }
        Ok(())
    }

    /// The scenario's name, which `--filter` matches.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }
}

/// How many rounds to run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rounds {
    /// Rounds run first and thrown away (page faults, caches, CPU frequency settling).
    pub(crate) warmup: u32,
    /// Rounds whose times are kept.
    pub(crate) measured: u32,
}

/// Runs `scenario`: every round times one batch of each contender in turn. Prints one progress
/// dot per round to stderr. Stops at the first error, naming the scenario and contender.
pub(crate) fn run(scenario: Scenario, rounds: Rounds) -> BenchResult<Report> {
    scenario.check_goals()?;
    let Scenario {
        name,
        op,
        note,
        unit,
        ops_per_batch,
        mut contenders,
        first_is,
        max_rounds,
        interleave,
        goals,
    } = scenario;
    let rounds = match max_rounds {
        Some(max) => Rounds {
            warmup: rounds.warmup.min(max.warmup),
            measured: rounds.measured.min(max.measured),
        },
        None => rounds,
    };
    let ops_per_batch = (ops_per_batch / u64::from(interleave)).max(1);
    let rounds = Rounds {
        warmup: rounds.warmup * interleave,
        measured: rounds.measured * interleave,
    };
    let mut samples: Vec<Vec<f64>> = contenders
        .iter()
        .map(|_| Vec::with_capacity(rounds.measured as usize))
        .collect();
    let ops = u32::try_from(ops_per_batch).unwrap_or(u32::MAX);
    eprint!("{name}: ");
    let count = contenders.len();
    for round in 0..rounds.warmup + rounds.measured {
        // An interleaved scenario starts each round one contender further on, so no row
        // always follows the same other (a batch right after Python's, say, pays for that
        // process's exit): its batches are short enough for that to show.
        let first = if interleave > 1 {
            round as usize % count.max(1)
        } else {
            0
        };
        for turn in 0..count {
            let index = (first + turn) % count;
            let (Some(contender), Some(samples)) =
                (contenders.get_mut(index), samples.get_mut(index))
            else {
                continue;
            };
            let ContenderState::Ready(batch) = &mut contender.state else {
                continue;
            };
            // Children forked in the batch inherit stdout's buffer; empty it so nothing is
            // printed twice. Nothing prints during a batch, so this covers every fork in it.
            io::stdout().flush()?;
            let sample = batch(ops_per_batch)
                .map_err(|err| format!("{name}: contender {:?} failed: {err}", contender.name))?;
            if round >= rounds.warmup {
                // `Duration / u32` keeps nanosecond precision.
                samples.push(unit.value(sample.elapsed / ops, sample));
            }
        }
        eprint!(".");
    }
    eprintln!();

    for samples in &mut samples {
        samples.sort_by(f64::total_cmp);
    }
    let floor_median = samples.first().filter(|s| !s.is_empty()).map(|s| median(s));
    let rows = contenders
        .into_iter()
        .zip(samples)
        .enumerate()
        .map(|(index, (contender, samples))| Row {
            marker: (index == 0).then_some(first_is),
            outcome: match contender.state {
                ContenderState::Skipped(reason) => Outcome::Skipped(reason),
                ContenderState::Ready(_) => Outcome::Measured(Stats::of(&samples, floor_median)),
            },
            name: contender.name,
        })
        .collect::<Vec<Row>>();
    let median_of = |name: &str| {
        rows.iter()
            .find(|row| row.name == name)
            .and_then(|row| match &row.outcome {
                Outcome::Measured(stats) => Some(stats.median),
                Outcome::Skipped(_) => None,
            })
    };
    let goals = goals
        .into_iter()
        .map(|goal| {
            let ratio = median_of(&goal.contender)
                .zip(median_of(&goal.versus).filter(|v| *v > 0.0))
                .map(|(contender, versus)| contender / versus);
            GoalResult { goal, ratio }
        })
        .collect();
    Ok(Report {
        name,
        op,
        note,
        first_is,
        unit,
        ops_per_batch,
        rounds,
        rows,
        goals,
    })
}

/// A goal and the ratio this run measured for it.
#[derive(Debug)]
pub(crate) struct GoalResult {
    /// The goal.
    pub(crate) goal: Goal,
    /// The ratio of the two medians; `None` when a row did not run (skipped).
    pub(crate) ratio: Option<f64>,
}

impl GoalResult {
    /// `met`, `NOT met`, or `n/a` (a row was skipped).
    pub(crate) fn verdict(&self) -> &'static str {
        match self.ratio {
            Some(ratio) if ratio <= self.goal.at_most => "met",
            Some(_) => "NOT met",
            None => "n/a",
        }
    }

    /// The measured ratio, `1.23×`, or `n/a`.
    pub(crate) fn ratio_text(&self) -> String {
        self.ratio.map_or_else(
            || "n/a".to_owned(),
            |ratio| format!("{}×", ratio_number(ratio)),
        )
    }

    /// The target, `≤ 1.50×`.
    pub(crate) fn target_text(&self) -> String {
        format!("≤ {}×", ratio_number(self.goal.at_most))
    }
}

/// A ratio with two decimals, or three below 0.1 (goals like "10× faster" are 0.10×).
fn ratio_number(ratio: f64) -> String {
    if ratio < 0.1 {
        format!("{ratio:.3}")
    } else {
        format!("{ratio:.2}")
    }
}

/// The results of one scenario.
#[derive(Debug)]
pub(crate) struct Report {
    /// The scenario's name.
    pub(crate) name: &'static str,
    /// What one op is.
    pub(crate) op: &'static str,
    /// A paragraph on how to read the figures, if the scenario has one.
    pub(crate) note: Option<&'static str>,
    /// What the first row is: "floor" or "reference".
    pub(crate) first_is: &'static str,
    /// The unit of every figure.
    pub(crate) unit: Unit,
    /// Ops per batch.
    pub(crate) ops_per_batch: u64,
    /// The rounds run.
    pub(crate) rounds: Rounds,
    /// One row per contender, the floor first.
    pub(crate) rows: Vec<Row>,
    /// The scenario's goals with the ratios measured.
    pub(crate) goals: Vec<GoalResult>,
}

/// One contender's results.
#[derive(Debug)]
pub(crate) struct Row {
    /// The contender's name.
    pub(crate) name: String,
    /// `Some("floor")` (or `"reference"`) for the row the others are compared with.
    pub(crate) marker: Option<&'static str>,
    /// Its figures, or why it did not run.
    pub(crate) outcome: Outcome,
}

/// What became of a contender.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// It ran every round.
    Measured(Stats),
    /// It could not run here, for this reason.
    Skipped(String),
}

/// A contender's figures over the measured rounds, in its scenario's unit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stats {
    /// The median round.
    pub(crate) median: f64,
    /// The 10th percentile of the rounds.
    pub(crate) p10: f64,
    /// The 90th percentile of the rounds.
    pub(crate) p90: f64,
    /// `median` divided by the floor's median; `None` when the floor did not run.
    pub(crate) ratio: Option<f64>,
}

impl Stats {
    /// The figures of sorted `samples`.
    fn of(samples: &[f64], floor_median: Option<f64>) -> Stats {
        let median = median(samples);
        Stats {
            median,
            p10: percentile(samples, 0.10),
            p90: percentile(samples, 0.90),
            ratio: floor_median.filter(|f| *f > 0.0).map(|f| median / f),
        }
    }
}

impl Row {
    /// The contender's name, marked when it is the floor or reference.
    pub(crate) fn label(&self) -> String {
        if let Some(marker) = self.marker {
            format!("{} [{marker}]", self.name)
        } else {
            self.name.clone()
        }
    }
}

impl Report {
    /// `median` with the unit.
    pub(crate) fn median_text(&self, stats: &Stats) -> String {
        format!("{} {}", self.unit.number(stats.median), self.unit.symbol())
    }

    /// The p10–p90 spread with the unit.
    pub(crate) fn spread_text(&self, stats: &Stats) -> String {
        format!(
            "{}–{} {}",
            self.unit.number(stats.p10),
            self.unit.number(stats.p90),
            self.unit.symbol()
        )
    }

    /// The ratio to the floor, `2.00×`, or `n/a`.
    pub(crate) fn ratio_text(stats: &Stats) -> String {
        stats
            .ratio
            .map_or_else(|| "n/a".to_owned(), |ratio| format!("{ratio:.2}×"))
    }

    /// The scenario as a plain-text table for the terminal.
    pub(crate) fn text_table(&self) -> String {
        let versus = format!("vs {}", self.first_is);
        let header = ["contender", "median", "p10–p90", versus.as_str()];
        let cells: Vec<[String; 4]> = self
            .rows
            .iter()
            .map(|row| match &row.outcome {
                Outcome::Measured(stats) => [
                    row.label(),
                    self.median_text(stats),
                    self.spread_text(stats),
                    Report::ratio_text(stats),
                ],
                Outcome::Skipped(reason) => [
                    row.label(),
                    format!("skipped: {reason}"),
                    String::new(),
                    String::new(),
                ],
            })
            .collect();
        let width = |column: usize| {
            cells
                .iter()
                .filter(|row| column == 0 || !row[2].is_empty())
                .map(|row| row[column].chars().count())
                .chain([header[column].chars().count()])
                .max()
                .unwrap_or(0)
        };
        let widths = [width(0), width(1), width(2), width(3)];
        let line = |row: [&str; 4]| {
            let text = format!(
                "  {:<w0$}  {:>w1$}  {:>w2$}  {:>w3$}",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3],
            );
            format!("{}\n", text.trim_end())
        };
        let mut text = format!(
            "== {}\n   one op: {}; {} ops per batch, {} measured rounds\n   ratio = {}\n",
            self.name,
            self.op,
            self.ops_per_batch,
            self.rounds.measured,
            self.unit.ratio_meaning()
        );
        text += &line(header);
        for row in &cells {
            if row[2].is_empty() {
                // A skipped row: the reason runs on past the columns.
                text += &format!("  {:<w$}  {}\n", row[0], row[1], w = widths[0]);
            } else {
                text += &line([&row[0], &row[1], &row[2], &row[3]]);
            }
        }
        if !self.goals.is_empty() {
            text += "   goals (ratio of the two rows' medians, this run):\n";
            for goal in &self.goals {
                text += &format!(
                    "  {}: {} (goal {}) {}\n",
                    goal.goal.what,
                    goal.ratio_text(),
                    goal.target_text(),
                    goal.verdict()
                );
            }
        }
        text
    }
}

/// The median of sorted `values` (the mean of the middle two for an even count).
fn median(values: &[f64]) -> f64 {
    percentile(values, 0.5)
}

/// The `p` quantile of sorted `values`, interpolating linearly between neighbours; 0 when empty.
fn percentile(values: &[f64], p: f64) -> f64 {
    let Some(last) = values.len().checked_sub(1) else {
        return 0.0;
    };
    let position = p.clamp(0.0, 1.0) * last as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    values[below] + (values[above] - values[below]) * (position - below as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate() {
        let values = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(median(&values), 2.5);
        assert_eq!(percentile(&values, 0.0), 1.0);
        assert_eq!(percentile(&values, 1.0), 4.0);
        assert!((percentile(&values, 0.1) - 1.3).abs() < 1e-9);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn contenders_run_interleaved_and_ratios_use_the_floor_median() -> BenchResult<()> {
        use std::cell::RefCell;
        use std::rc::Rc;
        let order = Rc::new(RefCell::new(String::new()));
        let (a, b) = (Rc::clone(&order), Rc::clone(&order));
        let scenario = Scenario::new(
            "test",
            "nothing",
            Unit::TimePerOp,
            10,
            Contender::self_timed("a", move |ops| {
                a.borrow_mut().push('a');
                // Rounds of 5 (warm-up), 3, 1 and 2 µs per op: the floor's median is 2 µs.
                let per_op = [5, 3, 1, 2][a.borrow().matches('a').count() - 1];
                Ok(Duration::from_micros(per_op * ops))
            }),
        )
        .contender(Contender::self_timed("b", move |ops| {
            b.borrow_mut().push('b');
            Ok(Duration::from_micros(6 * ops))
        }))
        .contender(Contender::skipped("c", "not here"));
        let report = run(
            scenario,
            Rounds {
                warmup: 1,
                measured: 3,
            },
        )?;
        assert_eq!(*order.borrow(), "abababab");
        let Outcome::Measured(a) = &report.rows[0].outcome else {
            return Err("a did not run".into());
        };
        let close = |x: f64, y: f64| (x - y).abs() < 1e-9;
        assert!(close(a.median, 2.0) && a.ratio == Some(1.0), "{a:?}");
        let Outcome::Measured(b) = &report.rows[1].outcome else {
            return Err("b did not run".into());
        };
        assert!(
            close(b.median, 6.0) && b.ratio.is_some_and(|r| close(r, 3.0)),
            "{b:?}"
        );
        assert!(matches!(report.rows[2].outcome, Outcome::Skipped(_)));
        assert!(report.text_table().contains("a [floor]"));
        Ok(())
    }

    #[test]
    fn goals_compare_two_rows_medians() -> BenchResult<()> {
        let per_op = |micros: u64| {
            move |ops: u64| -> BenchResult<Duration> { Ok(Duration::from_micros(micros * ops)) }
        };
        let scenario = Scenario::new(
            "test",
            "nothing",
            Unit::TimePerOp,
            4,
            Contender::self_timed("floor", per_op(1)),
        )
        .contender(Contender::self_timed("fast", per_op(2)))
        .contender(Contender::self_timed("slow", per_op(8)))
        .contender(Contender::skipped("gone", "not here"))
        .goal("fast ≤ 0.5× slow", "fast", "slow", 0.5)
        .goal("slow ≤ 2× fast", "slow", "fast", 2.0)
        .goal("gone ≤ 1× fast", "gone", "fast", 1.0);
        let rounds = Rounds {
            warmup: 0,
            measured: 2,
        };
        let report = run(scenario, rounds)?;
        let verdicts: Vec<_> = report.goals.iter().map(GoalResult::verdict).collect();
        assert_eq!(verdicts, ["met", "NOT met", "n/a"]);
        assert_eq!(report.goals[0].ratio_text(), "0.25×");
        assert!(
            report
                .text_table()
                .contains("slow ≤ 2× fast: 4.00× (goal ≤ 2.00×) NOT met")
        );

        let typo = Scenario::new(
            "test",
            "nothing",
            Unit::TimePerOp,
            1,
            Contender::self_timed("floor", per_op(1)),
        )
        .goal("typo", "flor", "floor", 1.0);
        assert!(typo.check_goals().is_err());
        assert!(run(typo, rounds).is_err());
        Ok(())
    }
}
