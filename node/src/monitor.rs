//! Sensor-stream warnings: rain sums over sliding windows and water levels against a gauge's
//! lines, graded with the national colours, one station at a time.
//!
//! This module is pure: no IO, no clock, no async. The caller keeps one [`StationState`] per
//! station (persisted with serde, or rebuilt from the last 24 h of readings with
//! [`StationState::rebuild`]), feeds every reading to [`observe`] and calls [`tick`] now and then;
//! both return the [`Transition`]s to publish. Nothing a device sends can make it panic: NaN,
//! infinities, negative rain, duplicate, out-of-order and absurd times are all handled below.
//!
//! # Rain
//! A `rain` reading is the amount (mm) fallen since the station's previous record, so it counts
//! in every window that holds its time. Windows are half-open, `(end − window, end]`, and end at
//! the station's rain clock: the latest time of a rain reading or a [`tick`], whichever is later
//! (it never goes back, so a late reading cannot revive a window a tick has already moved past).
//! Samples are kept for 24 h before the clock, sorted and deduplicated by time: the first value
//! at a time wins, as in the store (`ON CONFLICT DO NOTHING`), so a resent reading changes
//! nothing. A late reading older than 24 h before the clock is dropped. A rule (colour, window,
//! mm) *holds* when its window sum is `>=` its mm.
//!
//! # Water level
//! A `water_level` reading (m) is compared with the gauge's lines from [`StationInfo`]: blue at
//! `>= warning − blue_margin_m`, yellow at `>=` the warning line (警戒水位), orange at `>=` the
//! guarantee line (保证水位), red at `>=` the historic maximum. The level compared is the one of
//! the latest reading by time; a late reading only enters the rate of rise. Without a warning
//! line there is no flood warning at all; orange needs a guarantee line and red a historic
//! maximum. The rate of rise (m/h, negative when falling) is the slope from the oldest level in
//! the hour before the latest one to the latest, when the two are at least
//! [`RISE_MIN_SPAN_MIN`] minutes apart; levels are kept for [`LEVEL_HISTORY_H`] hours. When
//! [`FloodThresholds::rise_alert_m_per_h`] is set, a rise at least that fast holds yellow (at a
//! gauge with a warning line).
//!
//! # Warnings: raise, upgrade, lower, clear
//! Rain and flood each have one active colour per station and an episode counter. The colour
//! that should be shown is the highest one holding; when it is above the active one the warning
//! is raised (from none: a new episode, `episode + 1`) or upgraded at once. A lower value does
//! not lower it straight away: the active colour stays while its *clear* condition is not met,
//! and when it is met the warning drops to the highest lower colour whose clear condition is not
//! met either (or to what holds outright), or clears. Clear conditions: rain, the window sum
//! below `rain_clear_fraction ×` mm for every rule of that colour; flood, the level below the
//! colour's line minus `hysteresis_m` (and, for yellow, the rise below `rise_alert_m_per_h −
//! hysteresis_m`). So a value wandering across a boundary inside that band raises once and never
//! flaps, and a warning already shown is never repeated.
//!
//! # Offline and online
//! A station is offline when, at a [`tick`], nothing has been heard from it for more than
//! `offline_after_intervals × interval` (the station's `interval_s`, else `default_interval_s`).
//! It is reported once; the next reading of any name reports it online once. A reading counts as
//! heard at its own time, or, if that is earlier, at the last tick's time (it arrived after that
//! tick), so a station sending a stale backlog is back and stays back.

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

/// The rain windows a node watches, in hours; the only windows a rule may use.
pub const WINDOWS_H: [u32; 5] = [1, 3, 6, 12, 24];
/// How long water levels are kept for the rate of rise, in hours.
pub const LEVEL_HISTORY_H: i64 = 2;
/// The rate of rise needs two levels at least this many minutes apart, so that two readings a
/// second apart cannot make an absurd rate.
pub const RISE_MIN_SPAN_MIN: i64 = 15;

const MINUTE_US: i64 = 60_000_000;
const HOUR_US: i64 = 3_600_000_000;
const RAIN_HISTORY_US: i64 = 24 * HOUR_US;

/// A warning level, lowest first: 四级 blue < 三级 yellow < 二级 orange < 一级 red.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Colour {
    /// 蓝色, level Ⅳ.
    Blue,
    /// 黄色, level Ⅲ.
    Yellow,
    /// 橙色, level Ⅱ.
    Orange,
    /// 红色, level Ⅰ.
    Red,
}

impl Colour {
    /// Every colour, lowest first.
    pub const ALL: [Colour; 4] = [Colour::Blue, Colour::Yellow, Colour::Orange, Colour::Red];

    /// The colour's name as in the contract: `blue`, `yellow`, `orange`, `red`.
    pub fn as_str(self) -> &'static str {
        match self {
            Colour::Blue => "blue",
            Colour::Yellow => "yellow",
            Colour::Orange => "orange",
            Colour::Red => "red",
        }
    }

    fn index(self) -> usize {
        match self {
            Colour::Blue => 0,
            Colour::Yellow => 1,
            Colour::Orange => 2,
            Colour::Red => 3,
        }
    }
}

impl fmt::Display for Colour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The thresholds of every station of a node, from a TOML file (see `docs/thresholds.toml`) or
/// the national defaults. A field left out of the file keeps its default; any `[[rain]]` rule
/// replaces the whole default rule list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// A rain warning is lowered or cleared only when its window sum falls below this fraction
    /// of the colour's threshold, so that a sum hovering around a threshold does not flap.
    /// In (0, 1].
    #[serde(deserialize_with = "fraction")]
    pub rain_clear_fraction: f64,
    /// A station is offline after this many reporting intervals without a reading.
    #[serde(deserialize_with = "positive")]
    pub offline_after_intervals: f64,
    /// The reporting interval, in seconds, of a station whose registry entry gives none.
    #[serde(deserialize_with = "positive")]
    pub default_interval_s: f64,
    /// Water level at a gauge.
    pub flood: FloodThresholds,
    /// Rainstorm rules; the highest colour with a rule that holds is the one shown. Empty: no
    /// rain warnings.
    pub rain: Vec<RainRule>,
}

/// One rainstorm rule: `colour` when at least `mm` fell within the last `window_h` hours.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RainRule {
    /// The colour raised.
    pub colour: Colour,
    /// The window in hours, one of [`WINDOWS_H`].
    #[serde(deserialize_with = "window_hours")]
    pub window_h: u32,
    /// The threshold in millimetres, above 0.
    #[serde(deserialize_with = "positive")]
    pub mm: f64,
}

/// Flood thresholds; the lines themselves are per gauge, in [`StationInfo`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FloodThresholds {
    /// How far below the warning line, in metres, a level counts as near it (blue).
    #[serde(deserialize_with = "non_negative")]
    pub blue_margin_m: f64,
    /// A flood warning is lowered or cleared only when the level is this many metres below the
    /// colour's line, so that a level hovering around a line does not flap.
    #[serde(deserialize_with = "non_negative")]
    pub hysteresis_m: f64,
    /// When set, a level rising at least this fast (m/h) holds yellow at least.
    #[serde(deserialize_with = "optional_positive")]
    pub rise_alert_m_per_h: Option<f64>,
}

impl Default for FloodThresholds {
    fn default() -> Self {
        FloodThresholds { blue_margin_m: 0.3, hysteresis_m: 0.05, rise_alert_m_per_h: None }
    }
}

impl Default for Thresholds {
    /// The national defaults: rainstorm blue ≥ 50 mm in 12 h, yellow ≥ 50 mm in 6 h, orange
    /// ≥ 50 mm in 3 h, red ≥ 100 mm in 3 h; flood lines per gauge.
    fn default() -> Self {
        let rule = |colour, window_h, mm| RainRule { colour, window_h, mm };
        Thresholds {
            rain_clear_fraction: 0.9,
            offline_after_intervals: 3.0,
            default_interval_s: 600.0,
            flood: FloodThresholds::default(),
            rain: vec![
                rule(Colour::Blue, 12, 50.0),
                rule(Colour::Yellow, 6, 50.0),
                rule(Colour::Orange, 3, 50.0),
                rule(Colour::Red, 3, 100.0),
            ],
        }
    }
}

/// A thresholds file that cannot be used, with where (1-based; the column counts characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ThresholdsError {
    /// The line of the offending key or value.
    pub line: usize,
    /// The column, in characters, where it starts.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl Thresholds {
    /// Parses and validates a thresholds file. Unknown keys, windows other than
    /// [`WINDOWS_H`], non-finite numbers and numbers out of range are refused with their place.
    pub fn from_toml(text: &str) -> Result<Thresholds, ThresholdsError> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = line_and_column(text, e.span().map_or(0, |span| span.start));
            ThresholdsError { line, column, message: e.message().trim().to_owned() }
        })
    }
}

/// The 1-based line and character column of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or_default().chars().count() + 1;
    (line, column)
}

fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(D::Error::custom(format!("expected a number above 0, found {v}")))
    }
}

fn optional_positive<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    positive(d).map(Some)
}

fn non_negative<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(D::Error::custom(format!("expected a number of 0 or more, found {v}")))
    }
}

fn fraction<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(D::Error::custom(format!("expected a fraction above 0 and at most 1, found {v}")))
    }
}

fn window_hours<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = i64::deserialize(d)?;
    match u32::try_from(v) {
        Ok(h) if WINDOWS_H.contains(&h) => Ok(h),
        _ => Err(D::Error::custom(format!("expected a window of 1, 3, 6, 12 or 24 hours, found {v}"))),
    }
}

/// What the monitor needs to know about one station, from the device registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StationInfo {
    /// 警戒水位 (m); without it the station gives no flood warning.
    pub warning_level: Option<f64>,
    /// 保证水位 (m); without it no orange flood warning.
    pub guarantee_level: Option<f64>,
    /// The highest level on record (m); without it no red flood warning.
    pub historic_max: Option<f64>,
    /// The station's reporting interval (s); without it [`Thresholds::default_interval_s`].
    pub interval_s: Option<f64>,
}

impl From<&crate::devices::Device> for StationInfo {
    fn from(device: &crate::devices::Device) -> Self {
        StationInfo {
            warning_level: device.warning_level,
            guarantee_level: device.guarantee_level,
            historic_max: device.historic_max,
            interval_s: device.interval_s,
        }
    }
}

/// What a warning is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Metric {
    /// The rain sum over the last `window_h` hours (mm).
    Rain {
        /// One of [`WINDOWS_H`].
        window_h: u32,
    },
    /// The water level at a gauge (m).
    WaterLevel,
}

/// A change the caller publishes as a summarized event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Transition {
    /// A warning raised (`from` none), upgraded, lowered or cleared (`to` none).
    Warning {
        /// The rule's window for rain; the level for flood.
        metric: Metric,
        /// The colour before; none for a new episode.
        from: Option<Colour>,
        /// The colour now; none when cleared.
        to: Option<Colour>,
        /// The window sum (mm) or the latest level (m), now.
        value: f64,
        /// The threshold or line of `to`, or of `from` when cleared. For a yellow held by the
        /// rate of rise alone it is still the warning line; `rise_m_per_h` shows the cause.
        threshold: f64,
        /// Counts this station's rain (or flood) episodes from 1; the same from raise to clear.
        episode: u64,
        /// The rate of rise (m/h) for flood when known; none for rain.
        rise_m_per_h: Option<f64>,
    },
    /// Nothing heard from the station for longer than allowed.
    Offline {
        /// Seconds since the station was last heard.
        silent_for_s: f64,
    },
    /// An offline station was heard again.
    Online,
}

/// The warning shown now, and what it was last reported against (named again when it clears).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Active {
    colour: Colour,
    metric: Metric,
    threshold: f64,
}

/// Everything the monitor remembers about one station. Serializable so the caller may persist
/// it; a deserialized state is normalised (samples sorted, deduplicated, invalid values dropped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StationState {
    /// Rain samples `(time_us, mm)` within 24 h before `rain_clock_us`, sorted, one per time.
    #[serde(deserialize_with = "rain_samples")]
    rain: Vec<(i64, f64)>,
    /// Running sums of `rain` in micro-millimetres, one per sample, so that a window's sum is
    /// a difference of two entries instead of a walk over a day of samples. A cache: not
    /// serialized, not compared; a state whose cache does not match its samples sums by walking.
    #[serde(skip)]
    rain_prefix: PrefixSums,
    /// Where each rain rule's window started at the last evaluation (a cache, as `rain_prefix`).
    #[serde(skip)]
    rain_hints: Hints,
    /// Where the rain windows end: the latest rain reading's or tick's time.
    rain_clock_us: Option<i64>,
    /// Levels `(time_us, m)` within [`LEVEL_HISTORY_H`] of the latest, sorted, one per time.
    #[serde(deserialize_with = "level_samples")]
    levels: Vec<(i64, f64)>,
    rain_warning: Option<Active>,
    /// The id of the current or last rain episode (0: none yet).
    rain_episode: u64,
    flood_warning: Option<Active>,
    /// The id of the current or last flood episode (0: none yet).
    flood_episode: u64,
    /// When the station was last heard (see the module doc).
    last_seen_us: Option<i64>,
    /// The latest tick's time.
    last_tick_us: Option<i64>,
    online: bool,
}

impl Default for StationState {
    fn default() -> Self {
        StationState {
            rain: Vec::new(),
            rain_prefix: PrefixSums::default(),
            rain_hints: Hints::default(),
            rain_clock_us: None,
            levels: Vec::new(),
            rain_warning: None,
            rain_episode: 0,
            flood_warning: None,
            flood_episode: 0,
            last_seen_us: None,
            last_tick_us: None,
            online: true,
        }
    }
}

fn rain_samples<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(i64, f64)>, D::Error> {
    Ok(normalise(Vec::deserialize(d)?, |mm| mm.is_finite() && mm >= 0.0))
}

fn level_samples<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(i64, f64)>, D::Error> {
    Ok(normalise(Vec::deserialize(d)?, f64::is_finite))
}

fn normalise(mut samples: Vec<(i64, f64)>, valid: fn(f64) -> bool) -> Vec<(i64, f64)> {
    samples.retain(|s| valid(s.1));
    // Stable: of two samples at one time, the first stays, as when they were observed.
    samples.sort_by_key(|s| s.0);
    samples.dedup_by_key(|s| s.0);
    samples
}

/// Inserts a sample at its time unless one is there already (a resend changes nothing).
/// Returns where it went.
fn insert_first_wins(samples: &mut Vec<(i64, f64)>, time_us: i64, value: f64) -> Option<usize> {
    // Readings mostly come forward in time: after the last one, no search.
    if samples.last().is_none_or(|last| last.0 < time_us) {
        samples.push((time_us, value));
        return Some(samples.len() - 1);
    }
    match samples.binary_search_by_key(&time_us, |s| s.0) {
        Ok(_) => None,
        Err(at) => {
            samples.insert(at, (time_us, value));
            Some(at)
        }
    }
}

/// Running sums of rain amounts in micro-millimetres (exact integer arithmetic: a window's sum
/// does not depend on how the samples were grouped). Equal to any other, so that it never
/// makes two states differ.
#[derive(Debug, Clone, Default)]
struct PrefixSums {
    /// The running sum just before the first sample.
    base: i64,
    /// The running sum up to and including each sample.
    sums: Vec<i64>,
}

impl PartialEq for PrefixSums {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Indices where rain windows started, by rule, and a buffer for the windows' sums. Equal to
/// any other, as [`PrefixSums`].
#[derive(Debug, Clone, Default)]
struct Hints(Vec<Option<usize>>, Vec<f64>);

impl PartialEq for Hints {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

fn micro_mm(mm: f64) -> i64 {
    (mm * 1e6).round() as i64
}

impl PrefixSums {
    /// Recomputes the sums from sample `from` on.
    fn update(&mut self, samples: &[(i64, f64)], from: usize) {
        self.sums.truncate(from);
        let mut running = self.sums.last().copied().unwrap_or(self.base);
        for s in samples.get(from..).unwrap_or_default() {
            running = running.saturating_add(micro_mm(s.1));
            self.sums.push(running);
        }
    }

    /// Takes a sample of `micro` inserted at `at`: the sums after it grow by it. The cache must
    /// have matched the samples before the insertion.
    fn insert(&mut self, at: usize, micro: i64) {
        let before = if at == 0 { self.base } else { self.sums[at - 1] };
        for s in &mut self.sums[at..] {
            *s = s.saturating_add(micro);
        }
        self.sums.insert(at, before.saturating_add(micro));
    }

    /// Forgets the first `n` samples' sums.
    fn forget(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        match self.sums.get(n - 1) {
            Some(&before) => {
                self.base = before;
                self.sums.drain(..n);
            }
            None => {
                self.base = 0;
                self.sums.clear();
            }
        }
    }

    /// The sum of samples `from..to`, when the cache matches `len` samples.
    fn sum(&self, len: usize, from: usize, to: usize) -> Option<f64> {
        if self.sums.len() != len || from > to || to > len {
            return None;
        }
        let upto = |i: usize| if i == 0 { Some(self.base) } else { self.sums.get(i - 1).copied() };
        Some(upto(to)?.saturating_sub(upto(from)?) as f64 / 1e6)
    }
}

impl StationState {
    /// A station not heard from yet: no samples, no warnings, online.
    pub fn new() -> StationState {
        StationState::default()
    }

    /// Rebuilds a state from readings `(name, time_us, value)` (the last 24 h are enough): they
    /// are observed one by one in time order (stable for equal times), their transitions
    /// dropped. Episodes count from the readings given, so persisting the state keeps episode
    /// ids across restarts where rebuilding may not.
    pub fn rebuild<'a>(
        readings: impl IntoIterator<Item = (&'a str, i64, f64)>,
        info: &StationInfo,
        t: &Thresholds,
    ) -> StationState {
        let mut readings: Vec<_> = readings.into_iter().collect();
        readings.sort_by_key(|r| r.1);
        let mut state = StationState::new();
        for (name, time_us, value) in readings {
            observe(&mut state, name, time_us, value, info, t);
        }
        state
    }

    /// The active rain colour.
    pub fn rain_colour(&self) -> Option<Colour> {
        self.rain_warning.map(|a| a.colour)
    }

    /// The active flood colour.
    pub fn flood_colour(&self) -> Option<Colour> {
        self.flood_warning.map(|a| a.colour)
    }

    /// The id of the current or last rain episode; 0 before the first.
    pub fn rain_episode(&self) -> u64 {
        self.rain_episode
    }

    /// The id of the current or last flood episode; 0 before the first.
    pub fn flood_episode(&self) -> u64 {
        self.flood_episode
    }

    /// When the station was last heard (µs since the epoch); none before its first reading.
    pub fn last_seen_us(&self) -> Option<i64> {
        self.last_seen_us
    }

    /// False from an [`Transition::Offline`] until the next reading.
    pub fn is_online(&self) -> bool {
        self.online
    }

    /// Rain (mm) in the `window_h` hours ending at the rain clock (the window `(end − w, end]`);
    /// windows over 24 h see only the 24 h kept.
    pub fn rain_sum_mm(&self, window_h: u32) -> f64 {
        self.rain_window(window_h, None).0
    }

    /// The sum of a rain window and the index of its first sample. `hint`, where the window
    /// started the last time, makes finding the start O(1) while readings come forward in time.
    fn rain_window(&self, window_h: u32, hint: Option<usize>) -> (f64, usize) {
        let Some(end) = self.rain_clock_us else { return (0.0, 0) };
        let start = end.saturating_sub(i64::from(window_h).saturating_mul(HOUR_US));
        let after_start = |i: usize| self.rain.get(i).is_none_or(|s| s.0 > start);
        let from = match hint {
            // The start moved forward by a few samples at most (or not at all).
            Some(h) if h <= self.rain.len() && (h == 0 || self.rain[h - 1].0 <= start) => {
                (h..h.saturating_add(8).min(self.rain.len()))
                    .find(|&i| after_start(i))
                    .unwrap_or_else(|| h + self.rain[h..].partition_point(|s| s.0 <= start))
            }
            _ => self.rain.partition_point(|s| s.0 <= start),
        };
        // The clock moves to the latest reading, so every sample is at or before it; the search
        // stays in case that ever changes.
        let to = match self.rain.last() {
            Some(last) if last.0 <= end => self.rain.len(),
            _ => self.rain.partition_point(|s| s.0 <= end),
        };
        (self.rain_sum_between(from, to), from)
    }

    fn rain_sum_between(&self, from: usize, to: usize) -> f64 {
        if let Some(sum) = self.rain_prefix.sum(self.rain.len(), from, to) {
            return sum;
        }
        // Folded from +0: an empty window is 0, not the -0 `sum` starts from.
        self.rain.get(from..to).unwrap_or_default().iter().fold(0.0, |sum, s| sum + micro_mm(s.1) as f64 / 1e6)
    }

    /// The rain samples kept, `(time_us, mm)` in time order.
    pub fn rain_samples(&self) -> &[(i64, f64)] {
        &self.rain
    }

    /// The latest water level `(time_us, m)`.
    pub fn water_level(&self) -> Option<(i64, f64)> {
        self.levels.last().copied()
    }

    /// The rate of rise (m/h) at the latest level, when it can be told (see the module doc).
    pub fn rise_m_per_h(&self) -> Option<f64> {
        let &(latest_us, latest) = self.levels.last()?;
        let start = latest_us.saturating_sub(HOUR_US);
        let &(first_us, first) = self.levels.get(self.levels.partition_point(|l| l.0 < start))?;
        let span_us = latest_us.saturating_sub(first_us);
        if span_us < RISE_MIN_SPAN_MIN * MINUTE_US {
            return None;
        }
        Some((latest - first) / (span_us as f64 / HOUR_US as f64))
    }

    fn heard(&mut self, time_us: i64, out: &mut Vec<Transition>) {
        let heard = self.last_tick_us.map_or(time_us, |tick| tick.max(time_us));
        self.last_seen_us = Some(self.last_seen_us.map_or(heard, |seen| seen.max(heard)));
        if !self.online {
            self.online = true;
            out.push(Transition::Online);
        }
    }

    /// Moves the rain clock forward (never back) and forgets what no window can hold any more.
    fn advance_rain_clock(&mut self, time_us: i64) {
        let end = self.rain_clock_us.map_or(time_us, |c| c.max(time_us));
        self.rain_clock_us = Some(end);
        let cutoff = end.saturating_sub(RAIN_HISTORY_US);
        let stale = match self.rain.first() {
            Some(first) if first.0 <= cutoff => self.rain.partition_point(|s| s.0 <= cutoff),
            _ => 0,
        };
        if stale > 0 {
            self.rain.drain(..stale);
            self.rain_prefix.forget(stale);
        }
    }

    fn add_rain(&mut self, time_us: i64, mm: f64) {
        self.advance_rain_clock(time_us);
        let cutoff = self.rain_clock_us.unwrap_or(time_us).saturating_sub(RAIN_HISTORY_US);
        if time_us > cutoff
            && let Some(at) = insert_first_wins(&mut self.rain, time_us, mm)
        {
            if self.rain_prefix.sums.len() + 1 == self.rain.len() {
                self.rain_prefix.insert(at, micro_mm(mm));
            } else {
                // Rebuilt whole: the cache had fallen out of step (e.g. after deserializing).
                self.rain_prefix.update(&self.rain, 0);
            }
        }
    }

    fn add_level(&mut self, time_us: i64, level: f64) {
        let latest = self.levels.last().map_or(time_us, |l| l.0.max(time_us));
        let cutoff = latest.saturating_sub(LEVEL_HISTORY_H.saturating_mul(HOUR_US));
        if time_us >= cutoff {
            insert_first_wins(&mut self.levels, time_us, level);
        }
        let stale = self.levels.partition_point(|l| l.0 < cutoff);
        self.levels.drain(..stale);
    }

    fn evaluate_rain(&mut self, t: &Thresholds, out: &mut Vec<Transition>) {
        // The windows' sums, in a buffer kept with the hints (no allocation per reading).
        let Hints(mut hints, mut sums) = std::mem::take(&mut self.rain_hints);
        hints.resize(t.rain.len(), None);
        sums.clear();
        for (rule, hint) in t.rain.iter().zip(hints.iter_mut()) {
            let (sum, from) = self.rain_window(rule.window_h, *hint);
            *hint = Some(from);
            sums.push(sum);
        }
        // The highest colour up to `cap` with a rule at `fraction` of its threshold; within a
        // colour the rule nearest to (or furthest past) its threshold, the first on a tie.
        let strongest = |fraction: f64, cap: Colour| {
            t.rain
                .iter()
                .zip(&sums)
                .enumerate()
                .filter(|(_, (rule, sum))| rule.colour <= cap && **sum >= fraction * rule.mm)
                .max_by(|(i, (a, sa)), (j, (b, sb))| {
                    a.colour.cmp(&b.colour).then((*sa / a.mm).total_cmp(&(*sb / b.mm))).then(j.cmp(i))
                })
                .map(|(_, (rule, _))| Active {
                    colour: rule.colour,
                    metric: Metric::Rain { window_h: rule.window_h },
                    threshold: rule.mm,
                })
        };
        let raised = strongest(1.0, Colour::Red);
        let kept = self.rain_warning.and_then(|active| strongest(t.rain_clear_fraction, active.colour));
        let next = higher(raised, kept);
        let value = match next.or(self.rain_warning).map(|a| a.metric) {
            // The window's sum was just taken for its rule.
            Some(Metric::Rain { window_h }) => match t.rain.iter().position(|rule| rule.window_h == window_h) {
                Some(i) => sums[i],
                None => self.rain_sum_mm(window_h),
            },
            _ => 0.0,
        };
        self.rain_hints = Hints(hints, sums);
        change(&mut self.rain_warning, &mut self.rain_episode, next, value, None, out);
    }

    fn evaluate_flood(&mut self, info: &StationInfo, t: &Thresholds, out: &mut Vec<Transition>) {
        let Some((_, level)) = self.water_level() else { return };
        let rise = self.rise_m_per_h();
        let finite = |v: Option<f64>| v.filter(|v| v.is_finite());
        let lines = match finite(info.warning_level) {
            Some(warning) => [
                Some(warning - t.flood.blue_margin_m),
                Some(warning),
                finite(info.guarantee_level),
                finite(info.historic_max),
            ],
            None => [None; 4],
        };
        // The highest colour up to `cap` whose line the level reaches less `slack` (yellow also
        // by the rate of rise less `slack`).
        let highest = |slack: f64, cap: Colour| {
            Colour::ALL.into_iter().rev().filter(|&c| c <= cap).find_map(|colour| {
                let line = lines[colour.index()]?;
                let by_level = level >= line - slack;
                let by_rise = colour == Colour::Yellow
                    && rise.zip(t.flood.rise_alert_m_per_h).is_some_and(|(rise, alert)| rise >= alert - slack);
                (by_level || by_rise).then_some(Active { colour, metric: Metric::WaterLevel, threshold: line })
            })
        };
        let raised = highest(0.0, Colour::Red);
        let kept = self.flood_warning.and_then(|active| highest(t.flood.hysteresis_m, active.colour));
        let next = higher(raised, kept);
        change(&mut self.flood_warning, &mut self.flood_episode, next, level, rise, out);
    }
}

/// The higher of two candidate warnings; the first on a tie.
fn higher(a: Option<Active>, b: Option<Active>) -> Option<Active> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.colour > a.colour { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// Makes `next` the active warning, reporting the change if the colour changes.
fn change(
    active: &mut Option<Active>,
    episode: &mut u64,
    next: Option<Active>,
    value: f64,
    rise_m_per_h: Option<f64>,
    out: &mut Vec<Transition>,
) {
    let from = active.map(|a| a.colour);
    let to = next.map(|a| a.colour);
    // Lowered to the same colour or still holding: nothing to say, the basis reported stays.
    let Some(basis) = next.or(*active).filter(|_| from != to) else { return };
    if from.is_none() {
        *episode = episode.saturating_add(1);
    }
    out.push(Transition::Warning {
        metric: basis.metric,
        from,
        to,
        value,
        threshold: basis.threshold,
        episode: *episode,
        rise_m_per_h,
    });
    *active = next;
}

/// Takes one reading: `rain` (mm since the previous record) and `water_level` (m) are watched,
/// every name counts as a sign of life. A non-finite value, or negative rain, is a sign of life
/// and nothing else. Returns what changed: [`Transition::Online`] first, then a warning.
pub fn observe(
    state: &mut StationState,
    name: &str,
    time_us: i64,
    value: f64,
    info: &StationInfo,
    t: &Thresholds,
) -> Vec<Transition> {
    let mut out = Vec::new();
    state.heard(time_us, &mut out);
    if !value.is_finite() {
        return out;
    }
    match name {
        "rain" if value >= 0.0 => {
            state.add_rain(time_us, value);
            state.evaluate_rain(t, &mut out);
        }
        "water_level" => {
            state.add_level(time_us, value);
            state.evaluate_flood(info, t, &mut out);
        }
        _ => {}
    }
    out
}

/// Lets time pass: moves the rain windows to end at `now_us` (so rain warnings are lowered and
/// cleared with no new readings), re-evaluates the flood warning against `info` (which matters
/// only when the lines or thresholds changed), then reports the station offline once if it has
/// been silent too long. Returns the changes in that order.
pub fn tick(state: &mut StationState, now_us: i64, info: &StationInfo, t: &Thresholds) -> Vec<Transition> {
    let mut out = Vec::new();
    state.last_tick_us = Some(state.last_tick_us.map_or(now_us, |tick| tick.max(now_us)));
    state.advance_rain_clock(now_us);
    state.evaluate_rain(t, &mut out);
    state.evaluate_flood(info, t, &mut out);
    if state.online
        && let Some(seen) = state.last_seen_us
    {
        let silent_for_s = now_us.saturating_sub(seen) as f64 / 1e6;
        let interval_s = info.interval_s.filter(|i| i.is_finite() && *i > 0.0).unwrap_or(t.default_interval_s);
        if silent_for_s > t.offline_after_intervals * interval_s {
            state.online = false;
            out.push(Transition::Offline { silent_for_s });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 2025-07-01T00:00:00Z: minute offsets in the tables count from here.
    const T0: i64 = 1_751_328_000_000_000;

    /// One step of a case, at a minute offset from [`T0`].
    #[derive(Debug, Clone, Copy)]
    enum Step {
        Rain(i64, f64),
        Level(i64, f64),
        Other(&'static str, i64, f64),
        Tick(i64),
    }
    use Step::{Level, Other, Rain, Tick};

    struct Case {
        name: &'static str,
        steps: &'static [Step],
        expect: &'static [&'static str],
    }

    const GAUGE: StationInfo =
        StationInfo { warning_level: Some(4.5), guarantee_level: Some(5.2), historic_max: Some(6.0), interval_s: None };
    const NO_LINES: StationInfo =
        StationInfo { warning_level: None, guarantee_level: None, historic_max: None, interval_s: None };
    /// A rain gauge that reports once a day when dry, so that it is not offline in rain cases.
    const RAIN_GAUGE: StationInfo = StationInfo { interval_s: Some(86_400.0), ..NO_LINES };

    fn at(minute: i64) -> i64 {
        T0.saturating_add(minute.saturating_mul(MINUTE_US))
    }

    fn num(v: f64) -> String {
        format!("{}", (v * 1e6).round() / 1e6)
    }

    fn render(minute: i64, transition: &Transition) -> String {
        match transition {
            Transition::Warning { metric, from, to, value, threshold, episode, rise_m_per_h } => {
                let metric = match metric {
                    Metric::Rain { window_h } => format!("rain {window_h}h"),
                    Metric::WaterLevel => "level".to_owned(),
                };
                let colour = |c: &Option<Colour>| c.map_or("none", Colour::as_str);
                let mut line = format!(
                    "{minute}: {metric} {}->{} {}/{} #{episode}",
                    colour(from),
                    colour(to),
                    num(*value),
                    num(*threshold)
                );
                if let Some(rise) = rise_m_per_h {
                    line += &format!(" rise {}", num(*rise));
                }
                line
            }
            Transition::Offline { silent_for_s } => format!("{minute}: offline {}s", num(*silent_for_s)),
            Transition::Online => format!("{minute}: online"),
        }
    }

    /// Runs the steps on a fresh state and returns every transition, rendered with its minute.
    fn run(info: &StationInfo, t: &Thresholds, steps: &[Step]) -> (StationState, Vec<String>) {
        let mut state = StationState::new();
        let mut seen = Vec::new();
        for step in steps {
            let (minute, transitions) = match *step {
                Rain(m, v) => (m, observe(&mut state, "rain", at(m), v, info, t)),
                Level(m, v) => (m, observe(&mut state, "water_level", at(m), v, info, t)),
                Other(name, m, v) => (m, observe(&mut state, name, at(m), v, info, t)),
                Tick(m) => (m, tick(&mut state, at(m), info, t)),
            };
            seen.extend(transitions.iter().map(|tr| render(minute, tr)));
        }
        (state, seen)
    }

    fn check(info: &StationInfo, t: &Thresholds, cases: &[Case]) {
        for case in cases {
            let (_, seen) = run(info, t, case.steps);
            assert_eq!(seen, case.expect, "case: {}", case.name);
        }
    }

    #[test]
    fn colours_order_and_names() {
        assert!(Colour::Blue < Colour::Yellow && Colour::Yellow < Colour::Orange && Colour::Orange < Colour::Red);
        for colour in Colour::ALL {
            assert_eq!(serde_json::to_string(&colour).expect("json"), format!("\"{}\"", colour.as_str()));
        }
        let warning = Transition::Warning {
            metric: Metric::Rain { window_h: 3 },
            from: None,
            to: Some(Colour::Orange),
            value: 50.0,
            threshold: 50.0,
            episode: 1,
            rise_m_per_h: None,
        };
        assert_eq!(
            serde_json::to_string(&warning).expect("json"),
            r#"{"type":"warning","metric":{"kind":"rain","window_h":3},"from":null,"to":"orange","value":50.0,"threshold":50.0,"episode":1,"rise_m_per_h":null}"#
        );
    }

    #[test]
    fn rain_boundaries() {
        check(
            &RAIN_GAUGE,
            &Thresholds::default(),
            &[
                // 50 mm in 12 h but not in 6 h: one half at 0, the other 7 h later.
                Case { name: "12h below", steps: &[Rain(0, 24.9), Rain(420, 25.0)], expect: &[] },
                Case {
                    name: "12h at",
                    steps: &[Rain(0, 25.0), Rain(420, 25.0)],
                    expect: &["420: rain 12h none->blue 50/50 #1"],
                },
                Case {
                    name: "12h above",
                    steps: &[Rain(0, 25.1), Rain(420, 25.0)],
                    expect: &["420: rain 12h none->blue 50.1/50 #1"],
                },
                Case {
                    name: "12h window is half-open: 12 h later the first half is out",
                    steps: &[Rain(0, 25.0), Rain(720, 25.0)],
                    expect: &[],
                },
                // 50 mm in 6 h but not in 3 h: 4 h apart.
                Case { name: "6h below", steps: &[Rain(0, 24.9), Rain(240, 25.0)], expect: &[] },
                Case {
                    name: "6h at",
                    steps: &[Rain(0, 25.0), Rain(240, 25.0)],
                    expect: &["240: rain 6h none->yellow 50/50 #1"],
                },
                Case {
                    name: "6h above",
                    steps: &[Rain(0, 25.1), Rain(240, 25.0)],
                    expect: &["240: rain 6h none->yellow 50.1/50 #1"],
                },
                Case { name: "3h below", steps: &[Rain(0, 49.9)], expect: &[] },
                Case { name: "3h at", steps: &[Rain(0, 50.0)], expect: &["0: rain 3h none->orange 50/50 #1"] },
                Case { name: "3h above", steps: &[Rain(0, 50.1)], expect: &["0: rain 3h none->orange 50.1/50 #1"] },
                Case {
                    name: "3h in parts, the last just inside",
                    steps: &[Rain(1, 25.0), Rain(180, 25.0)],
                    expect: &["180: rain 3h none->orange 50/50 #1"],
                },
                Case { name: "red below", steps: &[Rain(0, 99.9)], expect: &["0: rain 3h none->orange 99.9/50 #1"] },
                Case { name: "red at", steps: &[Rain(0, 100.0)], expect: &["0: rain 3h none->red 100/100 #1"] },
                Case { name: "red above", steps: &[Rain(0, 100.1)], expect: &["0: rain 3h none->red 100.1/100 #1"] },
                Case {
                    name: "upgrade yellow -> orange -> red",
                    steps: &[Rain(0, 25.0), Rain(240, 25.0), Rain(250, 25.0), Rain(260, 50.0)],
                    expect: &[
                        "240: rain 6h none->yellow 50/50 #1",
                        "250: rain 3h yellow->orange 50/50 #1",
                        "260: rain 3h orange->red 100/100 #1",
                    ],
                },
            ],
        );
    }

    #[test]
    fn rain_clears_with_time_and_hysteresis() {
        check(
            &RAIN_GAUGE,
            &Thresholds::default(),
            &[
                Case {
                    name: "lowered step by step as the windows pass, then a new episode",
                    steps: &[
                        Rain(0, 50.0),
                        Tick(179),
                        Tick(180),
                        Tick(359),
                        Tick(360),
                        Tick(719),
                        Tick(720),
                        Tick(800),
                        Rain(810, 50.0),
                    ],
                    expect: &[
                        "0: rain 3h none->orange 50/50 #1",
                        "180: rain 6h orange->yellow 50/50 #1",
                        "360: rain 12h yellow->blue 50/50 #1",
                        "720: rain 12h blue->none 0/50 #1",
                        "810: rain 3h none->orange 50/50 #2",
                    ],
                },
                Case {
                    name: "held at exactly the clear fraction, lowered below it",
                    steps: &[Rain(0, 5.0), Rain(10, 45.0), Tick(181), Rain(185, 5.0), Tick(191)],
                    expect: &["10: rain 3h none->orange 50/50 #1", "191: rain 6h orange->yellow 55/50 #1"],
                },
                Case {
                    name: "a 3 h sum swinging 49 / 51 raises once",
                    steps: &[
                        Rain(0, 8.0),
                        Rain(30, 8.0),
                        Rain(60, 8.0),
                        Rain(90, 8.0),
                        Rain(120, 8.0),
                        Rain(150, 9.0),
                        Rain(180, 10.0),
                        Rain(210, 6.0),
                        Rain(240, 10.0),
                        Rain(270, 6.0),
                        Rain(300, 10.0),
                        Rain(330, 7.0),
                        Rain(360, 12.0),
                        Rain(390, 4.0),
                    ],
                    expect: &["180: rain 3h none->orange 51/50 #1"],
                },
                Case {
                    name: "a tick earlier than the readings does not move the windows back",
                    steps: &[Rain(100, 50.0), Tick(0), Tick(279), Tick(280)],
                    expect: &["100: rain 3h none->orange 50/50 #1", "280: rain 6h orange->yellow 50/50 #1"],
                },
            ],
        );
    }

    #[test]
    fn duplicate_late_and_invalid_readings() {
        check(
            &RAIN_GAUGE,
            &Thresholds::default(),
            &[
                Case {
                    name: "a resent reading counts once",
                    steps: &[Rain(0, 30.0), Rain(0, 30.0), Rain(10, 20.0)],
                    expect: &["10: rain 3h none->orange 50/50 #1"],
                },
                Case {
                    name: "at one time the first value wins",
                    steps: &[Rain(0, 30.0), Rain(0, 45.0), Rain(10, 20.0)],
                    expect: &["10: rain 3h none->orange 50/50 #1"],
                },
                Case {
                    name: "a late reading inside the window counts",
                    steps: &[Rain(100, 20.0), Rain(50, 30.0)],
                    expect: &["50: rain 3h none->orange 50/50 #1"],
                },
                Case {
                    name: "a late reading counts in the windows that end now and hold it",
                    steps: &[Rain(300, 30.0), Rain(100, 20.0)],
                    expect: &["100: rain 6h none->yellow 50/50 #1"],
                },
                Case {
                    name: "a reading older than 24 h is dropped",
                    steps: &[Rain(1500, 0.0), Rain(0, 100.0)],
                    expect: &[],
                },
                Case {
                    name: "NaN, infinities and negative rain are ignored",
                    steps: &[
                        Rain(0, f64::NAN),
                        Rain(1, f64::INFINITY),
                        Rain(2, f64::NEG_INFINITY),
                        Rain(3, -60.0),
                        Rain(4, 49.0),
                        Rain(5, f64::NAN),
                        Rain(6, 1.0),
                    ],
                    expect: &["6: rain 3h none->orange 50/50 #1"],
                },
                Case {
                    name: "an invalid reading does not take a time slot",
                    steps: &[Rain(0, f64::NAN), Rain(0, 50.0)],
                    expect: &["0: rain 3h none->orange 50/50 #1"],
                },
                Case {
                    name: "other names are not rain",
                    steps: &[Other("flow", 0, 500.0), Other("temp", 1, 80.0)],
                    expect: &[],
                },
            ],
        );
    }

    #[test]
    fn flood_boundaries() {
        let level = |value: f64| [Level(0, value)];
        let single = |value: f64, expect: Option<&str>| {
            let (_, seen) = run(&GAUGE, &Thresholds::default(), &level(value));
            assert_eq!(seen, expect.map(str::to_owned).into_iter().collect::<Vec<_>>(), "level {value}");
        };
        // Lines: blue 4.2 (4.5 − 0.3), yellow 4.5, orange 5.2, red 6.0.
        single(4.19, None);
        single(4.2, Some("0: level none->blue 4.2/4.2 #1"));
        single(4.21, Some("0: level none->blue 4.21/4.2 #1"));
        single(4.49, Some("0: level none->blue 4.49/4.2 #1"));
        single(4.5, Some("0: level none->yellow 4.5/4.5 #1"));
        single(4.51, Some("0: level none->yellow 4.51/4.5 #1"));
        single(5.19, Some("0: level none->yellow 5.19/4.5 #1"));
        single(5.2, Some("0: level none->orange 5.2/5.2 #1"));
        single(5.21, Some("0: level none->orange 5.21/5.2 #1"));
        single(5.99, Some("0: level none->orange 5.99/5.2 #1"));
        single(6.0, Some("0: level none->red 6/6 #1"));
        single(6.01, Some("0: level none->red 6.01/6 #1"));

        let only = |info: StationInfo, value: f64| run(&info, &Thresholds::default(), &level(value)).1;
        assert_eq!(only(NO_LINES, 100.0), Vec::<String>::new(), "no lines, no flood warning");
        let no_warning_line = StationInfo { warning_level: None, ..GAUGE };
        assert_eq!(only(no_warning_line, 100.0), Vec::<String>::new(), "orange and red need the warning line too");
        let warning_only = StationInfo { warning_level: Some(4.5), ..NO_LINES };
        assert_eq!(only(warning_only, 100.0), ["0: level none->yellow 100/4.5 #1"], "orange needs a guarantee line");
        let no_max = StationInfo { historic_max: None, ..GAUGE };
        assert_eq!(only(no_max, 100.0), ["0: level none->orange 100/5.2 #1"], "red needs the historic maximum");
        let nan_lines = StationInfo { warning_level: Some(f64::NAN), ..GAUGE };
        assert_eq!(only(nan_lines, 100.0), Vec::<String>::new(), "a NaN line is no line");
    }

    #[test]
    fn flood_hysteresis_and_episodes() {
        // Readings more than an hour apart, so that no rate of rise is known.
        check(
            &GAUGE,
            &Thresholds::default(),
            &[
                Case {
                    name: "held down to the line less the hysteresis, lowered below, cleared, new episode",
                    steps: &[
                        Level(0, 4.5),
                        Level(100, 4.45),
                        Level(200, 4.449),
                        Level(300, 4.5),
                        Level(400, 4.149),
                        Level(500, 4.2),
                    ],
                    expect: &[
                        "0: level none->yellow 4.5/4.5 #1",
                        "200: level yellow->blue 4.449/4.2 #1",
                        "300: level blue->yellow 4.5/4.5 #1",
                        "400: level yellow->none 4.149/4.5 #1",
                        "500: level none->blue 4.2/4.2 #2",
                    ],
                },
                Case {
                    name: "oscillating around the warning line raises once",
                    steps: &[
                        Level(0, 4.0),
                        Level(61, 4.51),
                        Level(122, 4.49),
                        Level(183, 4.51),
                        Level(244, 4.49),
                        Level(305, 4.51),
                        Level(366, 4.46),
                    ],
                    expect: &["61: level none->yellow 4.51/4.5 #1"],
                },
                Case {
                    name: "oscillating around the blue margin raises once",
                    steps: &[Level(0, 4.19), Level(61, 4.21), Level(122, 4.19), Level(183, 4.21), Level(244, 4.16)],
                    expect: &["61: level none->blue 4.21/4.2 #1"],
                },
                Case {
                    name: "upgrade blue -> yellow -> orange -> red, then held, lowered and cleared",
                    steps: &[
                        Level(0, 4.3),
                        Level(61, 4.6),
                        Level(122, 5.3),
                        Level(183, 6.1),
                        Level(244, 5.96),
                        Level(305, 5.94),
                        Level(366, 3.0),
                    ],
                    expect: &[
                        "0: level none->blue 4.3/4.2 #1",
                        "61: level blue->yellow 4.6/4.5 #1",
                        "122: level yellow->orange 5.3/5.2 #1",
                        "183: level orange->red 6.1/6 #1",
                        "305: level red->orange 5.94/5.2 #1",
                        "366: level orange->none 3/5.2 #1",
                    ],
                },
                Case {
                    name: "a late level is not the current level",
                    steps: &[Level(120, 4.6), Level(60, 3.0), Level(119, 3.0)],
                    expect: &["120: level none->yellow 4.6/4.5 #1"],
                },
                Case {
                    name: "a resent level changes nothing",
                    steps: &[Level(0, 4.6), Level(0, 3.0), Level(0, 4.6)],
                    expect: &["0: level none->yellow 4.6/4.5 #1"],
                },
                Case {
                    name: "NaN and infinite levels are ignored",
                    steps: &[Level(0, f64::NAN), Level(1, f64::INFINITY), Level(2, f64::NEG_INFINITY), Level(3, 4.2)],
                    expect: &["3: level none->blue 4.2/4.2 #1"],
                },
            ],
        );
    }

    #[test]
    fn rate_of_rise() {
        let rising = Thresholds {
            flood: FloodThresholds { rise_alert_m_per_h: Some(0.5), ..FloodThresholds::default() },
            ..Thresholds::default()
        };
        check(
            &GAUGE,
            &rising,
            &[
                Case {
                    name: "a fast rise holds yellow until it slows past the hysteresis",
                    steps: &[Level(0, 3.0), Level(10, 3.1), Level(20, 3.2), Level(30, 3.23), Level(40, 3.23)],
                    expect: &[
                        "20: level none->yellow 3.2/4.5 #1 rise 0.6",
                        "40: level yellow->none 3.23/4.5 #1 rise 0.345",
                    ],
                },
                Case {
                    name: "no rate from two levels less than 15 minutes apart",
                    steps: &[Level(0, 3.0), Level(10, 3.5), Level(20, 3.5)],
                    expect: &["20: level none->yellow 3.5/4.5 #1 rise 1.5"],
                },
                Case {
                    name: "the rate looks back one hour",
                    steps: &[Level(0, 1.0), Level(60, 1.0), Level(90, 1.4)],
                    expect: &["90: level none->yellow 1.4/4.5 #1 rise 0.8"],
                },
                Case {
                    name: "rising into orange upgrades",
                    steps: &[Level(0, 4.0), Level(30, 4.4), Level(60, 5.3)],
                    expect: &[
                        "30: level none->yellow 4.4/4.5 #1 rise 0.8",
                        "60: level yellow->orange 5.3/5.2 #1 rise 1.3",
                    ],
                },
            ],
        );
        // Without a warning line no flood warning, but the rate is still known.
        let (state, seen) = run(&NO_LINES, &rising, &[Level(0, 3.0), Level(30, 4.0)]);
        assert_eq!(seen, Vec::<String>::new());
        assert_eq!(state.rise_m_per_h(), Some(2.0));
        // Without rise_alert_m_per_h a rise alone warns of nothing.
        let (_, seen) = run(&GAUGE, &Thresholds::default(), &[Level(0, 3.0), Level(30, 4.0)]);
        assert_eq!(seen, Vec::<String>::new());
    }

    #[test]
    fn offline_and_online() {
        let fast = StationInfo { interval_s: Some(60.0), ..NO_LINES };
        check(
            &NO_LINES,
            &Thresholds::default(),
            &[
                Case { name: "never heard, never offline", steps: &[Tick(10_000)], expect: &[] },
                Case {
                    name: "offline after 3 × 600 s, once; back once",
                    steps: &[
                        Rain(0, 0.0),
                        Tick(30),
                        Tick(31),
                        Tick(60),
                        Other("temp", 65, 21.5),
                        Other("temp", 66, 21.5),
                        Tick(70),
                        Tick(96),
                        Tick(97),
                    ],
                    expect: &["31: offline 1860s", "65: online", "97: offline 1860s"],
                },
                Case {
                    name: "a stale backlog brings the station back and it stays back",
                    steps: &[Rain(0, 0.0), Tick(40), Rain(5, 1.0), Tick(45), Rain(6, 1.0), Tick(69)],
                    expect: &["40: offline 2400s", "5: online"],
                },
                Case {
                    name: "warnings run down while the station is offline",
                    steps: &[Rain(0, 50.0), Tick(31), Tick(180), Rain(200, 0.0)],
                    expect: &[
                        "0: rain 3h none->orange 50/50 #1",
                        "31: offline 1860s",
                        "180: rain 6h orange->yellow 50/50 #1",
                        "200: online",
                    ],
                },
                Case {
                    name: "a NaN reading is a sign of life",
                    steps: &[Level(0, 4.0), Tick(31), Level(32, f64::NAN), Tick(33)],
                    expect: &["31: offline 1860s", "32: online"],
                },
            ],
        );
        check(
            &fast,
            &Thresholds::default(),
            &[Case {
                name: "the station's own interval",
                steps: &[Rain(0, 0.0), Tick(3), Tick(4)],
                expect: &["4: offline 240s"],
            }],
        );
    }

    #[test]
    fn extreme_times_and_values_do_not_panic() {
        let t = Thresholds::default();
        let mut state = StationState::new();
        let times = [i64::MIN, i64::MIN + 1, -1, 0, 1, T0, i64::MAX - 1, i64::MAX];
        let values = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::MAX, f64::MIN, -0.0, 0.0, 1e300, 50.0];
        for &time in &times {
            for &value in &values {
                for name in ["rain", "water_level", "temp", ""] {
                    observe(&mut state, name, time, value, &GAUGE, &t);
                }
                tick(&mut state, time, &GAUGE, &t);
            }
        }
        for window in WINDOWS_H.into_iter().chain([0, u32::MAX]) {
            let _ = state.rain_sum_mm(window);
        }
        // Nonsense thresholds built in code are not refused, but cannot make it panic either.
        let nonsense = Thresholds {
            rain_clear_fraction: f64::NAN,
            offline_after_intervals: -1.0,
            default_interval_s: f64::INFINITY,
            flood: FloodThresholds { blue_margin_m: f64::NAN, hysteresis_m: -1.0, rise_alert_m_per_h: Some(0.0) },
            rain: vec![
                RainRule { colour: Colour::Red, window_h: u32::MAX, mm: 0.0 },
                RainRule { colour: Colour::Blue, window_h: 0, mm: f64::NAN },
            ],
        };
        let info = StationInfo { interval_s: Some(f64::NAN), ..GAUGE };
        for &time in &times {
            observe(&mut state, "rain", time, 1.0, &info, &nonsense);
            observe(&mut state, "water_level", time, 5.0, &info, &nonsense);
            tick(&mut state, time, &info, &nonsense);
        }
    }

    #[test]
    fn state_round_trips_and_is_normalised() {
        let (state, _) =
            run(&GAUGE, &Thresholds::default(), &[Rain(0, 30.0), Rain(10, 25.0), Level(0, 4.0), Level(30, 4.6)]);
        let json = serde_json::to_string(&state).expect("serialize");
        let back: StationState = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, state);

        let mut value: serde_json::Value = serde_json::from_str(&json).expect("json");
        value["rain"] = serde_json::json!([[3, 1.0], [1, 2.0], [3, 9.0], [2, -1.0]]);
        let messy: StationState = serde_json::from_value(value).expect("deserialize");
        assert_eq!(messy.rain_samples(), &[(1, 2.0), (3, 1.0)]);
    }

    #[test]
    fn rebuild_equals_observing_in_time_order() {
        let t = Thresholds::default();
        let readings = [("rain", at(300), 30.0), ("water_level", at(0), 4.6), ("rain", at(100), 30.0)];
        let rebuilt = StationState::rebuild(readings, &GAUGE, &t);
        let (observed, _) = run(&GAUGE, &t, &[Level(0, 4.6), Rain(100, 30.0), Rain(300, 30.0)]);
        assert_eq!(rebuilt, observed);
        assert_eq!(rebuilt.rain_colour(), Some(Colour::Yellow));
        assert_eq!(rebuilt.flood_colour(), Some(Colour::Yellow));
    }

    #[test]
    fn documented_thresholds_file_is_the_default() {
        let text = include_str!("../../docs/thresholds.toml");
        assert_eq!(Thresholds::from_toml(text), Ok(Thresholds::default()));
        // The options shown commented out are real ones.
        let uncommented = text.replace("# rise_alert_m_per_h", "rise_alert_m_per_h");
        let with_rise = Thresholds::from_toml(&uncommented).expect("rise_alert_m_per_h parses");
        assert!(with_rise.flood.rise_alert_m_per_h.is_some());
    }

    #[test]
    fn thresholds_files_are_checked_with_their_place() {
        let ok = Thresholds::from_toml("[flood]\nhysteresis_m = 0.1\n").expect("partial file");
        assert_eq!(ok.flood.hysteresis_m, 0.1);
        assert_eq!(ok.rain, Thresholds::default().rain, "rules left out keep the defaults");
        let only_red =
            Thresholds::from_toml("[[rain]]\ncolour = \"red\"\nwindow_h = 24\nmm = 250\n").expect("one rule");
        assert_eq!(only_red.rain, [RainRule { colour: Colour::Red, window_h: 24, mm: 250.0 }]);

        let cases = [
            ("[flood]\nblue_margin = 0.3\n", 2, 1, "unknown field"),
            ("typo = 1\n", 1, 1, "unknown field"),
            ("[[rain]]\ncolour = \"blue\"\nwindow_h = 2\nmm = 50\n", 3, 12, "1, 3, 6, 12 or 24"),
            ("[[rain]]\ncolour = \"blue\"\nwindow_h = -12\nmm = 50\n", 3, 12, "1, 3, 6, 12 or 24"),
            ("[[rain]]\ncolour = \"blue\"\nwindow_h = 12\nmm = 0\n", 4, 6, "above 0"),
            ("[[rain]]\ncolour = \"blue\"\nwindow_h = 12\nmm = nan\n", 4, 6, "above 0"),
            ("[[rain]]\ncolour = \"blue\"\nwindow_h = 12\nmm = inf\n", 4, 6, "above 0"),
            ("[[rain]]\ncolour = \"purple\"\nwindow_h = 12\nmm = 50\n", 2, 10, "purple"),
            ("[[rain]]\ncolour = \"blue\"\nwindow_h = 12\n", 1, 1, "mm"),
            ("[[rain]]\ncolour = \"blue\"\nwindow_h = 12\nmm = 50\nextra = 1\n", 5, 1, "unknown field"),
            ("rain_clear_fraction = 1.5\n", 1, 23, "fraction"),
            ("rain_clear_fraction = 0\n", 1, 23, "fraction"),
            ("offline_after_intervals = -3\n", 1, 27, "above 0"),
            ("default_interval_s = \"600\"\n", 1, 22, "expected f64"),
            ("# 阈值文件\n[flood]\nhysteresis_m = -0.05\n", 3, 16, "0 or more"),
            ("# 阈值\n[flood]\nrise_alert_m_per_h = 0\n", 3, 22, "above 0"),
            ("rain = [\n", 1, 9, "unclosed array"),
        ];
        for (text, line, column, message) in cases {
            let error = Thresholds::from_toml(text).expect_err(text);
            assert_eq!((error.line, error.column), (line, column), "{text:?}: {error}");
            assert!(error.message.contains(message), "{text:?}: {error}");
        }
    }

    /// A reading or a tick with arbitrary (including absurd) times and values.
    fn any_step() -> impl Strategy<Value = (u8, i64, f64)> {
        let time = prop_oneof![4 => 0i64..3_000, 1 => any::<i64>().prop_map(|t| t / MINUTE_US)];
        let value = prop_oneof![6 => 0.0..60.0f64, 1 => any::<f64>(), 1 => Just(f64::NAN), 1 => 3.5..6.5f64];
        (0u8..4, time, value)
    }

    fn apply(state: &mut StationState, (kind, minute, value): (u8, i64, f64), t: &Thresholds) -> Vec<Transition> {
        match kind {
            0 => observe(state, "rain", at(minute), value, &GAUGE, t),
            1 => observe(state, "water_level", at(minute), value, &GAUGE, t),
            2 => observe(state, "temp", at(minute), value, &GAUGE, t),
            _ => tick(state, at(minute), &GAUGE, t),
        }
    }

    proptest! {
        /// Whatever comes, transitions form a consistent story: each warning starts where the
        /// last one of its kind ended and changes something, episodes go up by one exactly at a
        /// raise from none, and offline and online alternate.
        #[test]
        fn transitions_are_consistent(steps in prop::collection::vec(any_step(), 0..80)) {
            let t = Thresholds {
                flood: FloodThresholds { rise_alert_m_per_h: Some(0.5), ..FloodThresholds::default() },
                ..Thresholds::default()
            };
            let mut state = StationState::new();
            let (mut rain, mut flood) = ((None, 0u64), (None, 0u64));
            let mut online = true;
            for step in steps {
                for transition in apply(&mut state, step, &t) {
                    match transition {
                        Transition::Warning { metric, from, to, episode, .. } => {
                            let (colour, last_episode) = match metric {
                                Metric::Rain { .. } => &mut rain,
                                Metric::WaterLevel => &mut flood,
                            };
                            prop_assert_eq!(from, *colour);
                            prop_assert_ne!(from, to);
                            let expected = if from.is_none() { *last_episode + 1 } else { *last_episode };
                            prop_assert_eq!(episode, expected);
                            *colour = to;
                            *last_episode = episode;
                        }
                        Transition::Offline { silent_for_s } => {
                            prop_assert!(online && silent_for_s > 0.0);
                            online = false;
                        }
                        Transition::Online => {
                            prop_assert!(!online);
                            online = true;
                        }
                    }
                }
                prop_assert_eq!(state.rain_colour(), rain.0);
                prop_assert_eq!(state.flood_colour(), flood.0);
                prop_assert_eq!(state.is_online(), online);
            }
        }

        /// Rebuilding from readings in any order gives the state of observing them one by one
        /// in time order.
        #[test]
        fn rebuild_is_observing_in_time_order(
            steps in prop::collection::vec(any_step(), 0..60).prop_shuffle(),
        ) {
            let t = Thresholds::default();
            let names = ["rain", "water_level", "temp", "rain"];
            let readings: Vec<(&str, i64, f64)> =
                steps.iter().map(|&(kind, minute, value)| (names[usize::from(kind)], at(minute), value)).collect();
            let rebuilt = StationState::rebuild(readings.iter().copied(), &GAUGE, &t);
            let mut sorted = readings.clone();
            sorted.sort_by_key(|r| r.1);
            let mut observed = StationState::new();
            for (name, time_us, value) in sorted {
                observe(&mut observed, name, time_us, value, &GAUGE, &t);
            }
            prop_assert_eq!(rebuilt, observed);
        }

        /// A window found from any hint is the window found by searching.
        #[test]
        fn a_hint_never_changes_a_window(
            steps in prop::collection::vec(any_step(), 0..80),
            hints in prop::collection::vec(0usize..100, 4),
        ) {
            let t = Thresholds::default();
            let mut state = StationState::new();
            for step in steps {
                apply(&mut state, step, &t);
                for (&window, &hint) in WINDOWS_H.iter().zip(&hints) {
                    let searched = state.rain_window(window, None);
                    let hinted = state.rain_window(window, Some(hint));
                    prop_assert_eq!((searched.0.to_bits(), searched.1), (hinted.0.to_bits(), hinted.1));
                }
            }
        }

        /// Arrival order and resends change no window sum.
        #[test]
        fn window_sums_ignore_arrival_order_and_resends(
            rain in prop::collection::btree_map(0i64..2_000, 0.0..30.0f64, 0..40),
            resend in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
            order in any::<u64>(),
        ) {
            let t = Thresholds::default();
            let mut readings: Vec<(i64, f64)> = rain.into_iter().collect();
            let in_order = readings.clone();
            if !readings.is_empty() {
                let resent: Vec<_> = resend.iter().map(|i| readings[i.index(readings.len())]).collect();
                readings.extend(resent);
                let len = readings.len();
                readings.rotate_left(usize::try_from(order % len as u64).unwrap_or(0));
                readings.reverse();
            }
            let feed = |list: &[(i64, f64)]| {
                let mut state = StationState::new();
                for &(minute, mm) in list {
                    observe(&mut state, "rain", at(minute), mm, &NO_LINES, &t);
                }
                state
            };
            let (a, b) = (feed(&in_order), feed(&readings));
            for window in WINDOWS_H {
                prop_assert_eq!(a.rain_sum_mm(window).to_bits(), b.rain_sum_mm(window).to_bits());
            }
            prop_assert_eq!(a.rain_samples(), b.rain_samples());
        }
    }
}
