//! What `nullspace bench` reports: samples summarized (p50, p90, mean), and rows that set each figure
//! beside a baseline measured in the same run, with their ratio and the target the figure is held to.
//! Absolute times swing on a shared machine from run to run; the ratio to the baseline is the figure.

use std::time::Duration;

use serde::Serialize;

use crate::cli::BenchMode;

/// p50, p90 and mean of a sample of durations, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub(super) struct Summary {
    pub(super) p50_ms: f64,
    pub(super) p90_ms: f64,
    pub(super) mean_ms: f64,
    pub(super) samples: usize,
}

/// Sorts `samples` and summarizes them.
pub(super) fn summarize(samples: &mut [Duration]) -> Summary {
    samples.sort();
    let figure = Figure::of_durations(samples);
    let mean = samples.iter().map(|d| d.as_secs_f64() * 1000.0).sum::<f64>() / samples.len().max(1) as f64;
    Summary { p50_ms: figure.p50, p90_ms: figure.p90, mean_ms: mean, samples: figure.samples }
}

/// The unit of a row's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Unit {
    Ms,
    MibPerS,
    Mib,
}

impl Unit {
    fn suffix(self) -> &'static str {
        match self {
            Unit::Ms => "ms",
            Unit::MibPerS => "MiB/s",
            Unit::Mib => "MiB",
        }
    }
}

/// p50 and p90 of a sample in a row's unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(super) struct Figure {
    pub(super) p50: f64,
    pub(super) p90: f64,
    pub(super) samples: usize,
}

impl Figure {
    /// Nearest-rank percentiles of `values` (sorted in place); all zero for an empty sample.
    pub(super) fn of(values: &mut [f64]) -> Figure {
        values.sort_by(f64::total_cmp);
        let at = |q: f64| match values.len() {
            0 => 0.0,
            n => values[((n as f64 - 1.0) * q).round() as usize],
        };
        Figure { p50: at(0.5), p90: at(0.9), samples: values.len() }
    }

    /// Milliseconds of each duration.
    pub(super) fn of_durations(samples: &[Duration]) -> Figure {
        Figure::of(&mut samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect::<Vec<_>>())
    }

    /// MiB/s of moving `mib` in each duration (so the p90 is the slower run's rate, the tenth-slowest).
    pub(super) fn of_rates(mib: f64, samples: &[Duration]) -> Figure {
        let mut rates: Vec<f64> = samples.iter().map(|d| mib / d.as_secs_f64().max(f64::EPSILON)).collect();
        let mut figure = Figure::of(&mut rates);
        // For a rate the worse tail is the low end: report the 10th percentile as the "p90" run.
        rates.sort_by(f64::total_cmp);
        figure.p90 = rates.get(((rates.len() as f64 - 1.0) * 0.1).round() as usize).copied().unwrap_or(0.0);
        figure
    }
}

/// A bound a row is held to: on the ratio (figure p50 / baseline p50), on the figure's p50, or on how
/// far the figure's p50 lies above the baseline's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Target {
    RatioAtMost(f64),
    RatioAtLeast(f64),
    P50AtMost(f64),
    MarginAtMost(f64),
}

impl Target {
    fn met(self, row: &Row) -> bool {
        let ratio = row.ratio();
        let margin = row.baseline.as_ref().map(|(_, base)| row.figure.p50 - base.p50);
        match self {
            Target::RatioAtMost(bound) => ratio.is_some_and(|r| r <= bound),
            Target::RatioAtLeast(bound) => ratio.is_some_and(|r| r >= bound),
            Target::P50AtMost(bound) => row.figure.p50 <= bound,
            Target::MarginAtMost(bound) => margin.is_some_and(|m| m <= bound),
        }
    }

    fn describe(self, unit: Unit) -> String {
        let unit = unit.suffix();
        match self {
            Target::RatioAtMost(bound) => format!("≤ {bound}×"),
            Target::RatioAtLeast(bound) => format!("≥ {bound}×"),
            Target::P50AtMost(bound) => format!("≤ {bound} {unit}"),
            Target::MarginAtMost(bound) => format!("≤ base + {bound} {unit}"),
        }
    }
}

/// One figure of the run beside its baseline.
#[derive(Debug, Clone)]
pub(super) struct Row {
    pub(super) mode: BenchMode,
    pub(super) name: String,
    pub(super) unit: Unit,
    pub(super) figure: Figure,
    /// What the figure is compared with, measured in the same run, in the same unit.
    pub(super) baseline: Option<(String, Figure)>,
    pub(super) targets: Vec<Target>,
}

impl Row {
    pub(super) fn new(mode: BenchMode, name: impl Into<String>, unit: Unit, figure: Figure) -> Row {
        Row { mode, name: name.into(), unit, figure, baseline: None, targets: Vec::new() }
    }

    pub(super) fn against(mut self, baseline: impl Into<String>, figure: Figure) -> Row {
        self.baseline = Some((baseline.into(), figure));
        self
    }

    pub(super) fn target(mut self, target: Target) -> Row {
        self.targets.push(target);
        self
    }

    /// Figure p50 / baseline p50.
    pub(super) fn ratio(&self) -> Option<f64> {
        let (_, base) = self.baseline.as_ref()?;
        (base.p50 > 0.0).then(|| self.figure.p50 / base.p50)
    }

    /// Whether every target holds (true for a row without targets).
    pub(super) fn met(&self) -> bool {
        self.targets.iter().all(|target| target.met(self))
    }
}

/// The JSON shape of a row (`nullspace bench --json`).
#[derive(Serialize)]
struct RowJson<'a> {
    mode: BenchMode,
    name: &'a str,
    unit: Unit,
    p50: f64,
    p90: f64,
    samples: usize,
    baseline: Option<BaselineJson<'a>>,
    ratio: Option<f64>,
    targets: Vec<TargetJson>,
    met: bool,
}

#[derive(Serialize)]
struct BaselineJson<'a> {
    name: &'a str,
    p50: f64,
    p90: f64,
    samples: usize,
}

#[derive(Serialize)]
struct TargetJson {
    #[serde(flatten)]
    target: Target,
    text: String,
}

pub(super) fn rows_json(rows: &[Row]) -> serde_json::Value {
    let rows: Vec<RowJson<'_>> = rows
        .iter()
        .map(|row| RowJson {
            mode: row.mode,
            name: &row.name,
            unit: row.unit,
            p50: row.figure.p50,
            p90: row.figure.p90,
            samples: row.figure.samples,
            baseline: row.baseline.as_ref().map(|(name, base)| BaselineJson {
                name,
                p50: base.p50,
                p90: base.p90,
                samples: base.samples,
            }),
            ratio: row.ratio(),
            targets: row
                .targets
                .iter()
                .map(|target| TargetJson { target: *target, text: target.describe(row.unit) })
                .collect(),
            met: row.met(),
        })
        .collect();
    serde_json::to_value(rows).unwrap_or_default()
}

/// The rows as a table: figure, baseline, ratio, target and whether it is met.
pub(super) fn print_rows(rows: &[Row]) {
    println!(
        "{:<10} {:<40} {:>10} {:>10} {:<7} {:<34} {:>8}  target",
        "mode", "figure", "p50", "p90", "unit", "baseline (p50 / p90)", "ratio"
    );
    for row in rows {
        let baseline = match &row.baseline {
            Some((name, base)) => format!("{name} {} / {}", number(base.p50), number(base.p90)),
            None => "—".to_owned(),
        };
        let ratio = row.ratio().map_or("—".to_owned(), |r| format!("{r:.2}×"));
        let targets = row.targets.iter().map(|t| t.describe(row.unit)).collect::<Vec<_>>().join(", ");
        let verdict = match (row.targets.is_empty(), row.met()) {
            (true, _) => "",
            (false, true) => " met",
            (false, false) => " not met",
        };
        println!(
            "{:<10} {:<40} {:>10} {:>10} {:<7} {:<34} {:>8}  {targets}{verdict}",
            row.mode.name(),
            row.name,
            number(row.figure.p50),
            number(row.figure.p90),
            row.unit.suffix(),
            baseline,
            ratio
        );
    }
}

/// Two decimals below 10, none above (figures span 0.3 ms to 2,000 MiB/s).
fn number(value: f64) -> String {
    if value.abs() < 10.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(p50: f64, base: f64) -> Row {
        let figure = Figure { p50, p90: p50, samples: 1 };
        Row::new(BenchMode::Exec, "x", Unit::Ms, figure).against("b", Figure { p50: base, p90: base, samples: 1 })
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let figure = Figure::of(&mut [5.0, 1.0, 4.0, 2.0, 3.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0]);
        assert_eq!((figure.p50, figure.p90, figure.samples), (6.0, 10.0, 11));
        assert_eq!(Figure::of(&mut []).samples, 0);
    }

    #[test]
    fn a_rate_reports_its_slow_tail_as_p90() {
        let samples = [1, 2, 4].map(Duration::from_secs);
        let figure = Figure::of_rates(8.0, &samples);
        assert_eq!((figure.p50, figure.p90), (4.0, 2.0));
    }

    #[test]
    fn targets_judge_ratio_p50_and_margin() {
        assert_eq!(row(2.0, 4.0).ratio(), Some(0.5));
        assert!(row(2.0, 4.0).target(Target::RatioAtMost(1.0)).met());
        assert!(!row(2.0, 4.0).target(Target::RatioAtLeast(0.7)).met());
        assert!(row(0.9, 0.5).target(Target::P50AtMost(1.0)).target(Target::MarginAtMost(0.5)).met());
        assert!(!row(1.2, 0.5).target(Target::MarginAtMost(0.5)).met());
        let no_base = Row::new(BenchMode::Exec, "x", Unit::Ms, Figure { p50: 1.0, p90: 1.0, samples: 1 });
        assert_eq!(no_base.ratio(), None);
        assert!(!no_base.clone().target(Target::RatioAtMost(2.0)).met());
        assert!(no_base.met(), "a row without targets has nothing to miss");
    }
}
