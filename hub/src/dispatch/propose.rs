//! Dispatch proposals (pure): which teams and which stockpiles answer an incident's recommended
//! actions, nearest first, with the reasons in plain words.
//!
//! * [`Resources::new`] indexes teams and stockpiles once (R-trees); [`Resources::update_team_status`]
//!   keeps the index of available teams current.
//! * [`propose`] answers one [`Request`]: for each [`Action::Teams`] the nearest available teams
//!   with the capability, the incident's own province first, then its neighbours in the order
//!   given, then (when [`Settings::any_province`]) any province; for each [`Action::Item`] the
//!   nearest stockpiles, split across several when one is short; a [`Shortfall`] when not enough
//!   exists. Every choice carries an explanation and the nearer teams passed over, with why.
//!
//! Distances are great-circle distances on geo's Haversine sphere (GRS80 mean radius) in km,
//! compared to the metre; ties go to the lower id. The R-trees index points as unit vectors in
//! 3-D, whose straight-line (chord) order is exactly the great-circle order, also near the poles
//! and across the 180° meridian: the candidates taken from a tree (in batches of
//! [`Settings::candidates`], doubled while the filters leave too few) are ranked by the
//! great-circle distance of their chord without missing a nearer one, and the distance reported
//! is `geo::Haversine`'s. No IO, no clock; no input makes it panic. The rules are written out in
//! `docs/dispatch.md`.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::fmt::{self, Write as _};

use geo::{Distance, Haversine, Point};
use rstar::RTree;
use rstar::primitives::GeomWithData;
use serde::{Deserialize, Serialize};

use crate::rules::Action;

/// At most this many nearer teams *with* the capability are listed as passed over, per action.
pub const PASSED_OVER_MAX: usize = 8;
/// At most this many nearer teams *lacking* the capability are listed as passed over, per action
/// (looked for among the nearest [`LACKING_SCAN`] teams only).
pub const PASSED_OVER_LACKING: usize = 3;
/// How many of the nearest teams are looked at for [`PASSED_OVER_LACKING`].
pub const LACKING_SCAN: usize = 64;

/// The radius `geo::Haversine` uses (GRS80 mean radius), in metres.
const EARTH_RADIUS_M: f64 = 6_371_008.8;
/// The largest batch taken from a tree at once.
const MAX_BATCH: usize = 1 << 16;

/// A team's state as far as dispatch is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeamStatus {
    Available,
    /// Assigned to another order.
    Assigned,
    Unavailable,
}

/// A rescue team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Team {
    pub id: String,
    pub name: String,
    /// The node the team is registered at (orders go through it).
    pub node: String,
    /// GB/T 2260 six-digit code of the team's province (`330000`).
    pub province: String,
    pub lat: f64,
    pub lon: f64,
    /// Capability names from the vocabulary (`flood_rescue`, `medical`, …).
    pub capabilities: Vec<String>,
    /// People in the team.
    pub size: u32,
    pub status: TeamStatus,
}

/// A relief-supply stockpile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stockpile {
    pub id: String,
    pub name: String,
    /// GB/T 2260 six-digit code of the stockpile's province.
    pub province: String,
    pub lat: f64,
    pub lon: f64,
    /// Quantity held by item name (`tent`, `quilt`, …).
    pub items: BTreeMap<String, u64>,
}

/// What to propose for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub incident: String,
    /// A drill: proposed exactly like a real incident (the order layer marks it).
    pub exercise: bool,
    /// Where the teams and supplies go: (latitude, longitude) in degrees.
    pub destination: (f64, f64),
    /// GB/T 2260 code of the incident's province.
    pub province: String,
    pub actions: Vec<Action>,
    /// Team ids never to propose (declined this incident, went overdue, …).
    pub exclude_teams: Vec<String>,
}

/// Province code → its neighbouring provinces, in the order they are asked for help.
pub type Neighbours = BTreeMap<String, Vec<String>>;

/// Tuning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Nominal road speed for the ETA, km/h (a value that is not finite and positive means 60).
    pub speed_kmh: f64,
    /// How many nearest candidates are taken from an R-tree before re-ranking; doubled while the
    /// filters leave too few. Affects speed only, never the result.
    pub candidates: usize,
    /// After the own province and its neighbours, look in any province.
    pub any_province: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings { speed_kmh: 60.0, candidates: 64, any_province: true }
    }
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// Team actions in request order, each action's teams by rank.
    pub teams: Vec<TeamChoice>,
    /// Item actions in request order, each action's stockpiles in the order taken.
    pub items: Vec<ItemChoice>,
    pub shortfalls: Vec<Shortfall>,
    /// Remarks on the request itself (invalid destination, invalid settings, empty actions).
    pub notes: Vec<String>,
}

/// One team proposed for a [`Action::Teams`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamChoice {
    /// Index of the action in [`Request::actions`].
    pub action: usize,
    /// The team's id.
    pub team: String,
    pub name: String,
    pub node: String,
    pub capability: String,
    pub distance_km: f64,
    /// Rounded to the minute.
    pub eta_min: u32,
    pub province: String,
    /// From a province other than the incident's.
    pub borrowed: bool,
    /// 1-based within the action.
    pub rank: u32,
    pub explanation: String,
    /// Nearer teams not chosen, nearest first (see [`PASSED_OVER_MAX`]).
    pub passed_over: Vec<PassedOver>,
}

/// A nearer team that was not chosen, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassedOver {
    pub team: String,
    pub distance_km: f64,
    pub why: String,
}

/// A quantity of an item from one stockpile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemChoice {
    /// Index of the action in [`Request::actions`].
    pub action: usize,
    pub item: String,
    /// The stockpile's id.
    pub stockpile: String,
    pub qty: u64,
    pub distance_km: f64,
    pub eta_min: u32,
    pub province: String,
    pub borrowed: bool,
    pub explanation: String,
}

/// Not enough found for an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shortfall {
    /// Index of the action in [`Request::actions`].
    pub action: usize,
    /// `team:<capability>` or `item:<item>`.
    pub what: String,
    pub needed: u64,
    pub found: u64,
    pub explanation: String,
}

type Entry = GeomWithData<[f64; 3], u32>;
type Tree = RTree<Entry>;

/// Teams and stockpiles, indexed for [`propose`].
pub struct Resources {
    /// Sorted by id; an index into it is also the id order.
    teams: Vec<Team>,
    team_at: Vec<Option<[f64; 3]>>,
    team_caps: Vec<Vec<u32>>,
    /// Capabilities with an id below 64, as bits (a quick test without a second memory access).
    team_capmask: Vec<u64>,
    team_province: Vec<u32>,
    team_index: HashMap<String, u32>,
    caps: HashMap<String, u32>,
    provinces: HashMap<String, u32>,
    /// Every team with valid coordinates, any status.
    all_teams: Tree,
    /// By capability, any status.
    cap_all: HashMap<u32, Tree>,
    /// By capability, available only.
    cap_avail: HashMap<u32, Tree>,
    /// By (capability, province), available only.
    cap_province_avail: HashMap<(u32, u32), Tree>,
    /// By capability: teams with valid coordinates per status (available, assigned, unavailable).
    cap_counts: HashMap<u32, [u64; 3]>,
    /// Sorted by id.
    stockpiles: Vec<Stockpile>,
    stock_province: Vec<u32>,
    items: HashMap<String, u32>,
    /// By item, stockpiles holding some.
    item_all: HashMap<u32, Tree>,
    item_province: HashMap<(u32, u32), Tree>,
    item_totals: HashMap<u32, u64>,
    problems: Vec<String>,
}

impl fmt::Debug for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resources")
            .field("teams", &self.teams.len())
            .field("stockpiles", &self.stockpiles.len())
            .field("problems", &self.problems)
            .finish_non_exhaustive()
    }
}

fn status_slot(status: TeamStatus) -> usize {
    match status {
        TeamStatus::Available => 0,
        TeamStatus::Assigned => 1,
        TeamStatus::Unavailable => 2,
    }
}

/// Latitude and longitude in range and finite.
pub fn valid_coordinates(lat: f64, lon: f64) -> bool {
    lat.is_finite() && lon.is_finite() && (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)
}

/// The unit vector of a point on the sphere, or `None` for invalid coordinates.
fn unit(lat: f64, lon: f64) -> Option<[f64; 3]> {
    if !valid_coordinates(lat, lon) {
        return None;
    }
    let (la, lo) = (lat.to_radians(), lon.to_radians());
    Some([la.cos() * lo.cos(), la.cos() * lo.sin(), la.sin()])
}

/// Great-circle distance in metres (Haversine); never NaN for valid coordinates.
fn haversine_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let m = Haversine.distance(Point::new(a.1, a.0), Point::new(b.1, b.0));
    if m.is_finite() { m } else { std::f64::consts::PI * EARTH_RADIUS_M }
}

/// The great-circle distance (metres) of a squared chord between unit vectors.
fn chord2_to_m(d2: f64) -> f64 {
    let chord = if d2.is_finite() { d2.max(0.0).sqrt().min(2.0) } else { 2.0 };
    2.0 * (chord / 2.0).asin() * EARTH_RADIUS_M
}

fn intern(map: &mut HashMap<String, u32>, name: &str) -> u32 {
    let next = map.len() as u32;
    *map.entry(name.to_owned()).or_insert(next)
}

/// Sorted by id; every id that occurs more than once is dropped (an order cannot name it).
fn unique_by_id<T>(mut all: Vec<T>, id: impl Fn(&T) -> &str, kind: &str, problems: &mut Vec<String>) -> Vec<T> {
    all.sort_by(|a, b| id(a).cmp(id(b)));
    let mut out: Vec<T> = Vec::with_capacity(all.len());
    let mut dropped: Option<String> = None;
    for t in all {
        if dropped.as_deref() == Some(id(&t)) {
            continue;
        }
        if out.last().is_some_and(|last| id(last) == id(&t)) {
            let last = out.pop().map(|l| id(&l).to_owned()).unwrap_or_default();
            problems.push(format!("{kind} {last}: the id occurs more than once; none of them is proposed"));
            dropped = Some(last);
            continue;
        }
        out.push(t);
    }
    out
}

impl Resources {
    /// Indexes the teams and stockpiles. Entries with invalid coordinates are kept (their status
    /// can be updated) but never proposed; an id used twice is dropped altogether. Both are listed
    /// in [`Resources::problems`].
    pub fn new(teams: Vec<Team>, stockpiles: Vec<Stockpile>) -> Resources {
        let mut problems = Vec::new();
        let teams = unique_by_id(teams, |t| t.id.as_str(), "team", &mut problems);
        let stockpiles = unique_by_id(stockpiles, |s| s.id.as_str(), "stockpile", &mut problems);

        let mut caps = HashMap::new();
        let mut provinces = HashMap::new();
        let mut items = HashMap::new();
        // Intern in sorted order so that the ids do not depend on the input order.
        for name in teams.iter().flat_map(|t| t.capabilities.iter()).collect::<BTreeSet<_>>() {
            intern(&mut caps, name);
        }
        for name in
            teams.iter().map(|t| &t.province).chain(stockpiles.iter().map(|s| &s.province)).collect::<BTreeSet<_>>()
        {
            intern(&mut provinces, name);
        }
        for name in stockpiles.iter().flat_map(|s| s.items.keys()).collect::<BTreeSet<_>>() {
            intern(&mut items, name);
        }

        let mut team_at = Vec::with_capacity(teams.len());
        let mut team_caps = Vec::with_capacity(teams.len());
        let mut team_capmask = Vec::with_capacity(teams.len());
        let mut team_province = Vec::with_capacity(teams.len());
        let mut team_index = HashMap::with_capacity(teams.len());
        let mut all = Vec::new();
        let mut by_cap: HashMap<u32, Vec<Entry>> = HashMap::new();
        let mut by_cap_avail: HashMap<u32, Vec<Entry>> = HashMap::new();
        let mut by_cap_province: HashMap<(u32, u32), Vec<Entry>> = HashMap::new();
        let mut cap_counts: HashMap<u32, [u64; 3]> = HashMap::new();
        for (i, t) in teams.iter().enumerate() {
            let i = i as u32;
            let at = unit(t.lat, t.lon);
            let mut tc: Vec<u32> = t.capabilities.iter().filter_map(|c| caps.get(c).copied()).collect();
            tc.sort_unstable();
            tc.dedup();
            let province = provinces.get(&t.province).copied().unwrap_or(u32::MAX);
            team_index.insert(t.id.clone(), i);
            match at {
                None => problems.push(format!(
                    "team {}: invalid coordinates (lat {}, lon {}); it is never proposed",
                    t.id, t.lat, t.lon
                )),
                Some(p) => {
                    let e = Entry::new(p, i);
                    all.push(e);
                    for &c in &tc {
                        by_cap.entry(c).or_default().push(e);
                        cap_counts.entry(c).or_default()[status_slot(t.status)] += 1;
                        if t.status == TeamStatus::Available {
                            by_cap_avail.entry(c).or_default().push(e);
                            by_cap_province.entry((c, province)).or_default().push(e);
                        }
                    }
                }
            }
            team_at.push(at);
            team_capmask.push(tc.iter().filter(|&&c| c < 64).fold(0u64, |m, &c| m | 1 << c));
            team_caps.push(tc);
            team_province.push(province);
        }

        let mut stock_province = Vec::with_capacity(stockpiles.len());
        let mut by_item: HashMap<u32, Vec<Entry>> = HashMap::new();
        let mut by_item_province: HashMap<(u32, u32), Vec<Entry>> = HashMap::new();
        let mut item_totals: HashMap<u32, u64> = HashMap::new();
        for (i, s) in stockpiles.iter().enumerate() {
            let i = i as u32;
            let at = unit(s.lat, s.lon);
            let province = provinces.get(&s.province).copied().unwrap_or(u32::MAX);
            match at {
                None => problems.push(format!(
                    "stockpile {}: invalid coordinates (lat {}, lon {}); it is never proposed",
                    s.id, s.lat, s.lon
                )),
                Some(p) => {
                    for (name, &qty) in &s.items {
                        let Some(&item) = items.get(name) else { continue };
                        if qty == 0 {
                            continue;
                        }
                        let e = Entry::new(p, i);
                        by_item.entry(item).or_default().push(e);
                        by_item_province.entry((item, province)).or_default().push(e);
                        let total = item_totals.entry(item).or_default();
                        *total = total.saturating_add(qty);
                    }
                }
            }
            stock_province.push(province);
        }

        let build = |v: Vec<Entry>| RTree::bulk_load(v);
        Resources {
            teams,
            team_at,
            team_caps,
            team_capmask,
            team_province,
            team_index,
            caps,
            provinces,
            all_teams: build(all),
            cap_all: by_cap.into_iter().map(|(k, v)| (k, build(v))).collect(),
            cap_avail: by_cap_avail.into_iter().map(|(k, v)| (k, build(v))).collect(),
            cap_province_avail: by_cap_province.into_iter().map(|(k, v)| (k, build(v))).collect(),
            cap_counts,
            stockpiles,
            stock_province,
            items,
            item_all: by_item.into_iter().map(|(k, v)| (k, build(v))).collect(),
            item_province: by_item_province.into_iter().map(|(k, v)| (k, build(v))).collect(),
            item_totals,
            problems,
        }
    }

    /// Sets a team's status; `false` when no (unique) team has that id.
    pub fn update_team_status(&mut self, id: &str, status: TeamStatus) -> bool {
        let Some(&i) = self.team_index.get(id) else { return false };
        let Some(team) = self.teams.get_mut(i as usize) else { return false };
        let old = team.status;
        if old == status {
            return true;
        }
        team.status = status;
        let Some(p) = self.team_at[i as usize] else { return true };
        let e = Entry::new(p, i);
        let province = self.team_province[i as usize];
        for &c in &self.team_caps[i as usize] {
            if let Some(counts) = self.cap_counts.get_mut(&c) {
                counts[status_slot(old)] = counts[status_slot(old)].saturating_sub(1);
                counts[status_slot(status)] += 1;
            }
            if old == TeamStatus::Available {
                if let Some(t) = self.cap_avail.get_mut(&c) {
                    t.remove(&e);
                }
                if let Some(t) = self.cap_province_avail.get_mut(&(c, province)) {
                    t.remove(&e);
                }
            } else if status == TeamStatus::Available {
                self.cap_avail.entry(c).or_default().insert(e);
                self.cap_province_avail.entry((c, province)).or_default().insert(e);
            }
        }
        true
    }

    /// The team with this id.
    pub fn team(&self, id: &str) -> Option<&Team> {
        self.team_index.get(id).and_then(|&i| self.teams.get(i as usize))
    }

    /// Every team kept, sorted by id.
    pub fn teams(&self) -> &[Team] {
        &self.teams
    }

    /// Every stockpile kept, sorted by id.
    pub fn stockpiles(&self) -> &[Stockpile] {
        &self.stockpiles
    }

    /// Entries that will never be proposed, and why (invalid coordinates, duplicate ids).
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Haversine distance of a team from a point, km.
    fn team_km(&self, i: u32, from: (f64, f64)) -> f64 {
        let t = &self.teams[i as usize];
        haversine_m(from, (t.lat, t.lon)) / 1000.0
    }

    /// Haversine distance of a stockpile from a point, km.
    fn stock_km(&self, i: u32, from: (f64, f64)) -> f64 {
        let s = &self.stockpiles[i as usize];
        haversine_m(from, (s.lat, s.lon)) / 1000.0
    }

    fn has_cap(&self, i: u32, cap: u32) -> bool {
        if cap < 64 {
            return self.team_capmask[i as usize] & (1 << cap) != 0;
        }
        self.team_caps[i as usize].binary_search(&cap).is_ok()
    }
}

/// A candidate from a tree: great-circle distance rounded to the metre (the ranking key), and
/// index (the id order).
#[derive(Debug, Clone, Copy)]
struct Cand {
    key: u64,
    idx: u32,
}

impl Cand {
    fn rank(&self) -> (u64, u32) {
        (self.key, self.idx)
    }
}

/// Candidates of one tree in (distance to the metre, id) order. The tree gives them in
/// straight-line order between unit vectors, which is the great-circle order; they are taken in
/// batches (doubled each time the filters of the caller leave too few), and one is released once
/// no later candidate can come before it, so ties at the metre go to the lower id.
struct Nearest<I> {
    iter: I,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    /// The key of the last candidate taken from the tree: no later one is nearer.
    frontier: u64,
    exhausted: bool,
    batch: usize,
}

fn nearest<'a>(tree: &'a Tree, at: [f64; 3], batch: usize) -> Nearest<impl Iterator<Item = (&'a Entry, f64)> + 'a> {
    Nearest {
        iter: tree.nearest_neighbor_iter_with_distance_2(&at),
        heap: BinaryHeap::new(),
        frontier: 0,
        exhausted: false,
        batch: batch.clamp(1, MAX_BATCH),
    }
}

impl<'a, I: Iterator<Item = (&'a Entry, f64)>> Iterator for Nearest<I> {
    type Item = Cand;

    fn next(&mut self) -> Option<Cand> {
        loop {
            match self.heap.peek() {
                Some(&Reverse((key, idx))) if self.exhausted || key < self.frontier => {
                    self.heap.pop();
                    return Some(Cand { key, idx });
                }
                None if self.exhausted => return None,
                _ => {}
            }
            for _ in 0..self.batch {
                match self.iter.next() {
                    Some((e, d2)) => {
                        // Rounded great-circle metres: non-decreasing along the tree's order.
                        let key = chord2_to_m(d2).round() as u64;
                        self.heap.push(Reverse((key, e.data)));
                        self.frontier = self.frontier.max(key);
                    }
                    None => {
                        self.exhausted = true;
                        break;
                    }
                }
            }
            self.batch = self.batch.saturating_mul(2).min(MAX_BATCH);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TierKind {
    Own,
    Neighbour,
    Other,
}

/// Where to look, in order: the own province, its neighbours, then (optionally) anywhere else.
#[derive(Debug)]
struct Tier<'a> {
    kind: TierKind,
    /// The province code (empty for [`TierKind::Other`]).
    name: &'a str,
    id: Option<u32>,
}

/// One chosen team, before it is written out.
#[derive(Debug, Clone, Copy)]
struct Chosen {
    cand: Cand,
    tier: usize,
    /// 1-based among the choices of its tier.
    ordinal: u32,
    /// How many were chosen in earlier tiers.
    before: u64,
}

/// "nearest", "2nd nearest", "11th nearest", …
struct Ordinal(u32);

impl fmt::Display for Ordinal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        let suffix = match (n % 10, n % 100) {
            (_, 11..=13) => "th",
            (1, _) => "st",
            (2, _) => "nd",
            (3, _) => "rd",
            _ => "th",
        };
        if n == 1 { f.write_str("nearest") } else { write!(f, "{n}{suffix} nearest") }
    }
}

fn ordinal(n: u32) -> Ordinal {
    Ordinal(n)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 { format!("{n} {one}") } else { format!("{n} {many}") }
}

fn join_and(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Everything `propose` shares between actions.
struct Ctx<'a> {
    res: &'a Resources,
    request: &'a Request,
    settings: &'a Settings,
    speed_kmh: f64,
    dest: Option<[f64; 3]>,
    from: (f64, f64),
    tiers: Vec<Tier<'a>>,
    excluded: HashSet<u32>,
    /// Team index → the action that took it.
    taken: HashMap<u32, usize>,
    /// (stockpile, item) → quantity already proposed.
    used: HashMap<(u32, u32), u64>,
}

impl Ctx<'_> {
    fn eta_min(&self, km: f64) -> u32 {
        (km / self.speed_kmh * 60.0).round() as u32
    }

    /// The tier a province belongs to, when looked up (None: not a tier, i.e. `Other`).
    fn tier_of(&self, province: u32) -> Option<usize> {
        self.tiers.iter().position(|t| t.kind != TierKind::Other && t.id == Some(province))
    }

    fn inner_names(&self, upto: usize) -> String {
        let names: Vec<&str> = self.tiers[..upto.min(self.tiers.len())]
            .iter()
            .filter(|t| t.kind != TierKind::Other)
            .map(|t| t.name)
            .collect();
        join_and(&names)
    }

    /// "330000", "330000 and its neighbours": the places looked in before tier `tier`.
    fn before_tier(&self, tier: usize) -> String {
        match self.tiers.get(tier).map(|t| t.kind) {
            Some(TierKind::Other) => format!("{} and its neighbours", self.request.province),
            _ => self.inner_names(tier),
        }
    }

    fn capability_name(&self, action: usize) -> &str {
        match self.request.actions.get(action) {
            Some(Action::Teams { capability, .. }) => capability,
            Some(Action::Item { item, .. }) => item,
            None => "",
        }
    }
}

/// Proposes teams and supplies for a request. Never panics; see the module documentation and
/// `docs/dispatch.md` for the rules.
pub fn propose(resources: &Resources, request: &Request, neighbours: &Neighbours, settings: &Settings) -> Proposal {
    let mut proposal = Proposal::default();
    let speed_kmh = if settings.speed_kmh.is_finite() && settings.speed_kmh > 0.0 {
        settings.speed_kmh
    } else {
        proposal.notes.push(format!("speed {} km/h is not usable; ETAs use 60 km/h", settings.speed_kmh));
        60.0
    };
    let (lat, lon) = request.destination;
    let dest = unit(lat, lon);
    if dest.is_none() {
        proposal
            .notes
            .push(format!("the destination (lat {lat}, lon {lon}) is not a valid position: nothing proposed"));
    }

    let mut tiers = vec![Tier {
        kind: TierKind::Own,
        name: request.province.as_str(),
        id: resources.provinces.get(&request.province).copied(),
    }];
    for n in neighbours.get(&request.province).into_iter().flatten() {
        if tiers.iter().any(|t| t.name == n.as_str()) {
            continue;
        }
        tiers.push(Tier { kind: TierKind::Neighbour, name: n.as_str(), id: resources.provinces.get(n).copied() });
    }
    if settings.any_province {
        tiers.push(Tier { kind: TierKind::Other, name: "", id: None });
    }
    let excluded = request.exclude_teams.iter().filter_map(|id| resources.team_index.get(id).copied()).collect();

    let mut ctx = Ctx {
        res: resources,
        request,
        settings,
        speed_kmh,
        dest,
        from: (lat, lon),
        tiers,
        excluded,
        taken: HashMap::new(),
        used: HashMap::new(),
    };
    for (a, action) in request.actions.iter().enumerate() {
        match action {
            Action::Teams { capability, teams, .. } => {
                if *teams == 0 {
                    proposal.notes.push(format!("action {a} asks for no {capability} team"));
                    continue;
                }
                propose_teams(&mut ctx, a, capability, u64::from(*teams), &mut proposal);
            }
            Action::Item { item, qty } => {
                if *qty == 0 {
                    proposal.notes.push(format!("action {a} asks for no {item}"));
                    continue;
                }
                propose_items(&mut ctx, a, item, *qty, &mut proposal);
            }
        }
    }
    proposal
}

fn propose_teams(ctx: &mut Ctx<'_>, action: usize, capability: &str, need: u64, out: &mut Proposal) {
    let res = ctx.res;
    let cap = res.caps.get(capability).copied();
    let mut chosen: Vec<Chosen> = Vec::new();
    // The last tier looked in.
    let mut reached = 0usize;
    if let (Some(cap), Some(dest)) = (cap, ctx.dest) {
        let inner: HashSet<u32> = ctx.tiers.iter().filter(|t| t.kind != TierKind::Other).filter_map(|t| t.id).collect();
        for (ti, tier) in ctx.tiers.iter().enumerate() {
            if chosen.len() as u64 >= need {
                break;
            }
            reached = ti;
            let tree = match tier.kind {
                TierKind::Other => res.cap_avail.get(&cap),
                _ => tier.id.and_then(|p| res.cap_province_avail.get(&(cap, p))),
            };
            let Some(tree) = tree else { continue };
            let before = chosen.len() as u64;
            let mut ordinal = 0u32;
            for c in nearest(tree, dest, ctx.settings.candidates) {
                if chosen.len() as u64 >= need {
                    break;
                }
                if ctx.taken.contains_key(&c.idx) || ctx.excluded.contains(&c.idx) {
                    continue;
                }
                if tier.kind == TierKind::Other && inner.contains(&res.team_province[c.idx as usize]) {
                    continue;
                }
                ordinal = ordinal.saturating_add(1);
                chosen.push(Chosen { cand: c, tier: ti, ordinal, before });
            }
        }
    }

    let passed = passed_over(ctx, action, cap, &chosen, reached);
    for (rank, (c, passed_over)) in chosen.iter().zip(passed).enumerate() {
        let team = &res.teams[c.cand.idx as usize];
        let km = res.team_km(c.cand.idx, ctx.from);
        let eta = ctx.eta_min(km);
        let tier = &ctx.tiers[c.tier];
        let mut explanation = match tier.kind {
            TierKind::Own => format!("{} available {capability} team in {}", ordinal(c.ordinal), tier.name),
            TierKind::Neighbour => format!(
                "borrowed from {}, a neighbour of {}: {} had {} of the {need} needed; {} available {capability} team there",
                tier.name,
                ctx.request.province,
                ctx.before_tier(c.tier),
                c.before,
                ordinal(c.ordinal)
            ),
            TierKind::Other => format!(
                "borrowed from {}, beyond {}'s neighbours: {} had {} of the {need} needed; {} available {capability} team \
                 beyond them",
                team.province,
                ctx.request.province,
                ctx.before_tier(c.tier),
                c.before,
                ordinal(c.ordinal)
            ),
        };
        let _ = write!(explanation, ", {km:.1} km, ETA {eta} min");
        match passed_over.len() {
            0 => {}
            1 => explanation.push_str("; 1 nearer team passed over"),
            n => {
                let _ = write!(explanation, "; {n} nearer teams passed over");
            }
        }
        out.teams.push(TeamChoice {
            action,
            team: team.id.clone(),
            name: team.name.clone(),
            node: team.node.clone(),
            capability: capability.to_owned(),
            distance_km: km,
            eta_min: eta,
            province: team.province.clone(),
            borrowed: tier.kind != TierKind::Own,
            rank: u32::try_from(rank + 1).unwrap_or(u32::MAX),
            explanation,
            passed_over,
        });
    }

    let found = chosen.len() as u64;
    if found < need {
        out.shortfalls.push(Shortfall {
            action,
            what: format!("team:{capability}"),
            needed: need,
            found,
            explanation: team_shortfall(ctx, cap, capability, need, found),
        });
    }
    for c in &chosen {
        ctx.taken.insert(c.cand.idx, action);
    }
}

fn team_shortfall(ctx: &Ctx<'_>, cap: Option<u32>, capability: &str, need: u64, found: u64) -> String {
    let head = format!("found {found} of the {need} {capability} teams needed");
    if ctx.dest.is_none() {
        return format!("{head}: the destination is not a valid position");
    }
    let Some(cap) = cap else {
        return format!("{head}: no team with valid coordinates has {capability}");
    };
    let res = ctx.res;
    let [_, assigned, unavailable] = res.cap_counts.get(&cap).copied().unwrap_or_default();
    let total: u64 = res.cap_counts.get(&cap).map(|c| c.iter().sum()).unwrap_or(0);
    let eligible = |i: &u32| {
        res.has_cap(*i, cap)
            && res.teams[*i as usize].status == TeamStatus::Available
            && res.team_at[*i as usize].is_some()
    };
    let excluded = ctx.excluded.iter().filter(|i| eligible(i)).count();
    let taken = ctx.taken.keys().filter(|i| eligible(i)).count();
    let mut parts = vec![format!("{assigned} assigned to other orders"), format!("{unavailable} unavailable")];
    if excluded > 0 {
        parts.push(format!("{excluded} excluded for this incident"));
    }
    if taken > 0 {
        parts.push(format!("{taken} proposed above for other actions"));
    }
    let mut text = format!(
        "{head}: of the {total} teams with {capability}, {}",
        join_and(&parts.iter().map(String::as_str).collect::<Vec<_>>())
    );
    if !ctx.settings.any_province {
        text.push_str(&format!("; teams beyond {} and its neighbours were not considered", ctx.request.province));
    }
    text
}

/// Nearer teams not chosen, for each choice (in rank order): each listed under the first choice it
/// is nearer than; at most [`PASSED_OVER_MAX`] with the capability and [`PASSED_OVER_LACKING`]
/// without it per action.
fn passed_over(
    ctx: &Ctx<'_>,
    action: usize,
    cap: Option<u32>,
    chosen: &[Chosen],
    reached: usize,
) -> Vec<Vec<PassedOver>> {
    let mut lists: Vec<Vec<(Cand, String)>> = vec![Vec::new(); chosen.len()];
    let (Some(cap), Some(dest), Some(far)) = (cap, ctx.dest, chosen.iter().map(|c| c.cand.rank()).max()) else {
        return vec![Vec::new(); chosen.len()];
    };
    let res = ctx.res;
    let is_chosen: HashSet<u32> = chosen.iter().map(|c| c.cand.idx).collect();
    let capability = ctx.capability_name(action);
    let mut attach = |c: Cand, why: String| {
        if let Some(k) = chosen.iter().position(|ch| ch.cand.rank() > c.rank()) {
            lists[k].push((c, why));
        }
    };

    if let Some(tree) = res.cap_all.get(&cap) {
        let mut listed = 0;
        for c in nearest(tree, dest, ctx.settings.candidates) {
            if listed >= PASSED_OVER_MAX || c.rank() >= far {
                break;
            }
            if is_chosen.contains(&c.idx) {
                continue;
            }
            attach(c, why_capable(ctx, c.idx, chosen, reached));
            listed += 1;
        }
    }
    let mut listed = 0;
    for c in nearest(&res.all_teams, dest, ctx.settings.candidates).take(LACKING_SCAN) {
        if listed >= PASSED_OVER_LACKING || c.rank() >= far {
            break;
        }
        if res.has_cap(c.idx, cap) {
            continue;
        }
        attach(c, format!("lacks {capability}"));
        listed += 1;
    }

    lists
        .into_iter()
        .map(|mut l| {
            l.sort_by_key(|(c, _)| c.rank());
            l.into_iter()
                .map(|(c, why)| PassedOver {
                    team: res.teams[c.idx as usize].id.clone(),
                    distance_km: res.team_km(c.idx, ctx.from),
                    why,
                })
                .collect()
        })
        .collect()
}

/// Why a nearer team with the capability was not chosen.
fn why_capable(ctx: &Ctx<'_>, idx: u32, chosen: &[Chosen], reached: usize) -> String {
    let res = ctx.res;
    let team = &res.teams[idx as usize];
    if ctx.excluded.contains(&idx) {
        return "excluded for this incident (declined or overdue)".to_owned();
    }
    match team.status {
        TeamStatus::Assigned => return "assigned to another order".to_owned(),
        TeamStatus::Unavailable => return "unavailable".to_owned(),
        TeamStatus::Available => {}
    }
    if let Some(&a) = ctx.taken.get(&idx) {
        return format!("proposed above for {} (action {a})", ctx.capability_name(a));
    }
    let own = ctx.request.province.as_str();
    let tier = ctx.tier_of(res.team_province[idx as usize]);
    let (kind, tier) = match tier {
        Some(0) => return "not needed".to_owned(),
        Some(t) => ("a neighbour".to_owned(), Some(t)),
        None => (format!("not a neighbour of {own}"), ctx.tiers.iter().position(|t| t.kind == TierKind::Other)),
    };
    let Some(tier) = tier else {
        return format!("in {}, {kind}; other provinces are not considered", team.province);
    };
    if tier > reached {
        let supplied: Vec<&str> = ctx.tiers[..=reached]
            .iter()
            .enumerate()
            .filter(|(t, _)| chosen.iter().any(|c| c.tier == *t))
            .map(|(_, t)| if t.kind == TierKind::Other { "other provinces" } else { t.name })
            .collect();
        let supplied = if supplied.is_empty() { own.to_owned() } else { join_and(&supplied) };
        format!("in {}, {kind}, while {supplied} had enough", team.province)
    } else {
        let borrowed = chosen.iter().filter(|c| c.tier == tier).count();
        format!(
            "in {}, {kind}: only {} borrowed there, nearest first",
            team.province,
            plural(borrowed, "team", "teams")
        )
    }
}

fn propose_items(ctx: &mut Ctx<'_>, action: usize, item: &str, need: u64, out: &mut Proposal) {
    let res = ctx.res;
    let item_id = res.items.get(item).copied();
    let mut remaining = need;
    let mut used_before = 0u64;
    if let Some(it) = item_id {
        used_before = ctx.used.iter().filter(|((_, i), _)| *i == it).map(|(_, q)| *q).fold(0, u64::saturating_add);
    }
    if let (Some(it), Some(dest)) = (item_id, ctx.dest) {
        let inner: HashSet<u32> = ctx.tiers.iter().filter(|t| t.kind != TierKind::Other).filter_map(|t| t.id).collect();
        for ti in 0..ctx.tiers.len() {
            if remaining == 0 {
                break;
            }
            let tier = &ctx.tiers[ti];
            let tree = match tier.kind {
                TierKind::Other => res.item_all.get(&it),
                _ => tier.id.and_then(|p| res.item_province.get(&(it, p))),
            };
            let Some(tree) = tree else { continue };
            let found_before = need - remaining;
            let mut ordinal_n = 0u32;
            for c in nearest(tree, dest, ctx.settings.candidates) {
                if remaining == 0 {
                    break;
                }
                let province = res.stock_province[c.idx as usize];
                if tier.kind == TierKind::Other && inner.contains(&province) {
                    continue;
                }
                let sp = &res.stockpiles[c.idx as usize];
                let holds = sp.items.get(item).copied().unwrap_or(0);
                let used = ctx.used.entry((c.idx, it)).or_default();
                let left = holds.saturating_sub(*used);
                if left == 0 {
                    continue;
                }
                let take = left.min(remaining);
                *used += take;
                remaining -= take;
                ordinal_n = ordinal_n.saturating_add(1);
                let km = res.stock_km(c.idx, ctx.from);
                let eta = ctx.eta_min(km);
                let mut explanation = match tier.kind {
                    TierKind::Own => format!("{} stockpile with {item} left in {}", ordinal(ordinal_n), tier.name),
                    TierKind::Neighbour => format!(
                        "borrowed from {}, a neighbour of {}: {} had {found_before} of the {need} needed; {} stockpile \
                         with {item} left there",
                        tier.name,
                        ctx.request.province,
                        ctx.before_tier(ti),
                        ordinal(ordinal_n)
                    ),
                    TierKind::Other => format!(
                        "borrowed from {}, beyond {}'s neighbours: {} had {found_before} of the {need} needed; {} \
                         stockpile with {item} left beyond them",
                        sp.province,
                        ctx.request.province,
                        ctx.before_tier(ti),
                        ordinal(ordinal_n)
                    ),
                };
                let _ = write!(explanation, ", {km:.1} km, ETA {eta} min: ");
                let _ = if take == need {
                    write!(explanation, "all {need} needed")
                } else if take == left && left == holds {
                    write!(explanation, "{take} of the {need} needed (all it holds)")
                } else if take == left {
                    write!(explanation, "{take} of the {need} needed (all it has left after earlier actions)")
                } else {
                    write!(explanation, "the remaining {take} of the {need} needed")
                };
                out.items.push(ItemChoice {
                    action,
                    item: item.to_owned(),
                    stockpile: sp.id.clone(),
                    qty: take,
                    distance_km: km,
                    eta_min: eta,
                    province: sp.province.clone(),
                    borrowed: tier.kind != TierKind::Own,
                    explanation,
                });
            }
        }
    }
    if remaining > 0 {
        let found = need - remaining;
        let head = format!("found {found} of the {need} {item} needed");
        let explanation = if ctx.dest.is_none() {
            format!("{head}: the destination is not a valid position")
        } else {
            let total = item_id.and_then(|i| res.item_totals.get(&i).copied()).unwrap_or(0);
            let mut text = format!("{head}: stockpiles with valid coordinates hold {total} in all");
            if used_before > 0 {
                text.push_str(&format!(", {used_before} of it proposed above for other actions"));
            }
            if !ctx.settings.any_province {
                text.push_str(&format!(
                    "; stockpiles beyond {} and its neighbours were not considered",
                    ctx.request.province
                ));
            }
            text
        };
        out.shortfalls.push(Shortfall { action, what: format!("item:{item}"), needed: need, found, explanation });
    }
}
