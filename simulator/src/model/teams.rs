//! Simulated rescue teams: how each answers a dispatch order. The plan for an order is a pure
//! function of the drill's seed, the team and the order id, so the IO side can ask for it when
//! the order arrives and get the same answer in every run.

use rand::Rng;
use yingji_hub::resources::TeamRecord;

use super::seed::rng;
use crate::hazard::{LatLon, km_between};
use crate::scenario::{Disposition, TeamParams};

/// How a team behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    /// A fixed answer to every order (`[[teams.override]]`), else drawn per order.
    pub always: Option<Disposition>,
    /// Relative weights of accepting, declining and not answering.
    pub weights: [f64; 3],
    /// Seconds to acknowledge, [min, max].
    pub ack_s: [f64; 2],
    /// Seconds to set off after accepting, [min, max].
    pub muster_s: [f64; 2],
    /// Road speed, km/h.
    pub speed_kmh: f64,
    /// Seconds on scene, [min, max].
    pub work_s: [f64; 2],
}

/// A simulated team.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamSim {
    pub id: String,
    pub name: String,
    /// The node the team listens at (its dispatch topic is on that node's broker).
    pub node: String,
    pub home: LatLon,
    pub capabilities: Vec<String>,
    pub behaviour: Behaviour,
}

/// What a team does with one order, in scenario seconds after it receives it.
#[derive(Debug, Clone, PartialEq)]
pub enum TeamPlan {
    /// Answers `declined` after `after_s`, with a reason.
    Decline { after_s: f64, reason: String },
    /// Never answers: the hub must resend and escalate.
    NoShow,
    /// Answers `received`/`accepted` after `ack_after_s`, sets off (`en_route`), arrives
    /// (`on_scene`) after `arrive_after_s` and is done (`completed`) after `done_after_s`.
    Accept { ack_after_s: f64, arrive_after_s: f64, done_after_s: f64 },
}

/// Reasons a team gives for declining.
const REASONS: [&str; 4] =
    ["队伍正在执行其他任务", "装备检修中，暂不具备出动条件", "人员不足", "道路中断，无法按时到达"];

/// Straight distances are multiplied by this to get road distances.
pub const ROAD_FACTOR: f64 = 1.3;

/// The distance assumed when the destination is not known, km.
pub const DEFAULT_DISTANCE_KM: f64 = 60.0;

impl TeamSim {
    pub fn new(record: &TeamRecord, params: &TeamParams) -> TeamSim {
        let always = params.overrides.iter().find(|o| o.id == record.id).map(|o| o.always);
        TeamSim {
            id: record.id.clone(),
            name: record.name.clone(),
            node: record.node.clone(),
            home: LatLon { lat: record.lat, lon: record.lon },
            capabilities: record.capabilities.clone(),
            behaviour: Behaviour {
                always,
                weights: [params.accept, params.decline, params.no_show],
                ack_s: params.ack_s,
                muster_s: params.muster_s,
                speed_kmh: params.speed_kmh.max(1.0),
                work_s: params.work_s,
            },
        }
    }

    /// Deterministic plan for one order: what the team does and after how long (scenario
    /// seconds). Travel assumes [`DEFAULT_DISTANCE_KM`]; see [`TeamSim::respond_to`].
    pub fn respond(&self, order_id: &str, seed: u64) -> TeamPlan {
        self.respond_to(order_id, seed, None)
    }

    /// As [`TeamSim::respond`], travelling to `destination` (the order's) when given.
    pub fn respond_to(&self, order_id: &str, seed: u64, destination: Option<LatLon>) -> TeamPlan {
        let mut r = rng(seed, &["team", &self.id, order_id]);
        let b = &self.behaviour;
        let draw: f64 = r.random();
        let disposition = b.always.unwrap_or_else(|| {
            let total: f64 = b.weights.iter().sum();
            let x = draw * total;
            if x < b.weights[0] {
                Disposition::Accept
            } else if x < b.weights[0] + b.weights[1] {
                Disposition::Decline
            } else {
                Disposition::NoShow
            }
        });
        let mut between = |[lo, hi]: [f64; 2]| if hi > lo { r.random_range(lo..hi) } else { lo };
        let ack = between(b.ack_s);
        match disposition {
            Disposition::NoShow => TeamPlan::NoShow,
            Disposition::Decline => {
                let reason = REASONS[(draw * 1e6) as usize % REASONS.len()].to_owned();
                TeamPlan::Decline { after_s: ack, reason }
            }
            Disposition::Accept => {
                let muster = between(b.muster_s);
                let work = between(b.work_s);
                let km = destination.map_or(DEFAULT_DISTANCE_KM, |d| km_between(self.home, d));
                let travel = km * ROAD_FACTOR / b.speed_kmh * 3600.0;
                let arrive = ack + muster + travel;
                TeamPlan::Accept { ack_after_s: ack, arrive_after_s: arrive, done_after_s: arrive + work }
            }
        }
    }
}
