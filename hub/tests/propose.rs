//! Dispatch proposals: capability filter, province preference and neighbours, statuses,
//! exclusions, ties, teams with several capabilities, items split across stockpiles, shortfalls,
//! empty and bad inputs, determinism, and the R-tree order against a brute-force ranking.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use yingji_hub::dispatch::propose::{
    Neighbours, PASSED_OVER_LACKING, PASSED_OVER_MAX, Proposal, Request, Resources, Settings, Stockpile, Team,
    TeamStatus, propose,
};
use yingji_hub::rules::Action;

const DEST: (f64, f64) = (30.0, 120.0);
/// Metres in one degree of latitude on geo's Haversine sphere.
const M_PER_DEG: f64 = 6_371_008.8 * std::f64::consts::PI / 180.0;
const OWN: &str = "330000";

/// A point `km` north of the destination (along the meridian, so the distance is exact).
fn north(km: f64) -> (f64, f64) {
    (DEST.0 + km * 1000.0 / M_PER_DEG, DEST.1)
}

fn team(id: &str, province: &str, km: f64, caps: &[&str], status: TeamStatus) -> Team {
    let (lat, lon) = north(km);
    Team {
        id: id.into(),
        name: format!("Team {id}"),
        node: format!("node-{province}"),
        province: province.into(),
        lat,
        lon,
        capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
        size: 12,
        status,
    }
}

fn avail(id: &str, province: &str, km: f64, caps: &[&str]) -> Team {
    team(id, province, km, caps, TeamStatus::Available)
}

fn stockpile(id: &str, province: &str, km: f64, items: &[(&str, u64)]) -> Stockpile {
    let (lat, lon) = north(km);
    Stockpile {
        id: id.into(),
        name: format!("Depot {id}"),
        province: province.into(),
        lat,
        lon,
        items: items.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
    }
}

fn teams_action(capability: &str, n: u32) -> Action {
    Action::Teams { capability: capability.into(), teams: n, automatic: false }
}

fn item_action(item: &str, qty: u64) -> Action {
    Action::Item { item: item.into(), qty }
}

fn request(actions: Vec<Action>, exclude: &[&str]) -> Request {
    Request {
        incident: "flood-2026-07".into(),
        exercise: false,
        destination: DEST,
        province: OWN.into(),
        actions,
        exclude_teams: exclude.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn neighbours() -> Neighbours {
    BTreeMap::from([(OWN.to_owned(), vec!["350000".to_owned(), "320000".to_owned()])])
}

fn run(teams: Vec<Team>, stock: Vec<Stockpile>, req: &Request) -> Proposal {
    propose(&Resources::new(teams, stock), req, &neighbours(), &Settings::default())
}

fn chosen(p: &Proposal) -> Vec<&str> {
    p.teams.iter().map(|t| t.team.as_str()).collect()
}

fn passed(p: &Proposal) -> Vec<(String, String)> {
    p.teams.iter().flat_map(|t| t.passed_over.iter().map(|o| (o.team.clone(), o.why.clone()))).collect()
}

#[derive(Default)]
struct Case {
    name: &'static str,
    teams: Vec<Team>,
    actions: Vec<Action>,
    exclude: &'static [&'static str],
    settings: Settings,
    chosen: &'static [&'static str],
    /// (team, the start of why) for every team passed over, in order.
    passed: &'static [(&'static str, &'static str)],
    /// (what, needed, found).
    shortfalls: &'static [(&'static str, u64, u64)],
}

#[test]
fn team_selection_table() {
    use TeamStatus::{Assigned, Unavailable};
    let fr = "flood_rescue";
    let cases = vec![
        Case {
            name: "capability filter: a nearer team without the capability is passed over",
            teams: vec![avail("a", OWN, 2.0, &["medical"]), avail("b", OWN, 9.0, &[fr, "evacuation"])],
            actions: vec![teams_action(fr, 1)],
            chosen: &["b"],
            passed: &[("a", "lacks flood_rescue")],
            ..Case::default()
        },
        Case {
            name: "province preference: a nearer neighbour team is passed over while the own province has enough",
            teams: vec![avail("n1", "350000", 3.0, &[fr]), avail("o1", OWN, 20.0, &[fr])],
            actions: vec![teams_action(fr, 1)],
            chosen: &["o1"],
            passed: &[("n1", "in 350000, a neighbour, while 330000 had enough")],
            ..Case::default()
        },
        Case {
            name: "province preference: a nearer non-neighbour team",
            teams: vec![avail("x1", "440000", 3.0, &[fr]), avail("o1", OWN, 20.0, &[fr])],
            actions: vec![teams_action(fr, 1)],
            chosen: &["o1"],
            passed: &[("x1", "in 440000, not a neighbour of 330000, while 330000 had enough")],
            ..Case::default()
        },
        Case {
            name: "borrowing in neighbour order: 350000 before 320000 though 320000's team is nearer",
            teams: vec![
                avail("o1", OWN, 30.0, &[fr]),
                avail("s1", "320000", 4.0, &[fr]),
                avail("f2", "350000", 50.0, &[fr]),
                avail("f1", "350000", 40.0, &[fr]),
            ],
            actions: vec![teams_action(fr, 3)],
            chosen: &["o1", "f1", "f2"],
            passed: &[("s1", "in 320000, a neighbour, while 330000 and 350000 had enough")],
            ..Case::default()
        },
        Case {
            name: "borrowing goes on to the next neighbour, then any province",
            teams: vec![
                avail("o1", OWN, 30.0, &[fr]),
                avail("f1", "350000", 40.0, &[fr]),
                avail("s1", "320000", 60.0, &[fr]),
                avail("x1", "440000", 5.0, &[fr]),
            ],
            actions: vec![teams_action(fr, 4)],
            chosen: &["o1", "f1", "s1", "x1"],
            ..Case::default()
        },
        Case {
            name: "any province can be turned off: shortfall instead",
            teams: vec![avail("o1", OWN, 30.0, &[fr]), avail("x1", "440000", 5.0, &[fr])],
            actions: vec![teams_action(fr, 2)],
            settings: Settings { any_province: false, ..Settings::default() },
            chosen: &["o1"],
            passed: &[("x1", "in 440000, not a neighbour of 330000; other provinces are not considered")],
            shortfalls: &[("team:flood_rescue", 2, 1)],
            ..Case::default()
        },
        Case {
            name: "a neighbour team not needed once its nearer teams covered the gap",
            teams: vec![
                avail("o1", OWN, 30.0, &[fr]),
                avail("f1", "350000", 10.0, &[fr]),
                avail("f2", "350000", 20.0, &[fr]),
            ],
            actions: vec![teams_action(fr, 2)],
            chosen: &["o1", "f1"],
            passed: &[("f2", "in 350000, a neighbour: only 1 team borrowed there, nearest first")],
            ..Case::default()
        },
        Case {
            name: "assigned and unavailable teams skipped and named when nearer",
            teams: vec![
                team("a", OWN, 1.0, &[fr], Assigned),
                team("u", OWN, 2.0, &[fr], Unavailable),
                avail("ok", OWN, 3.0, &[fr]),
                team("far", OWN, 9.0, &[fr], Assigned),
            ],
            actions: vec![teams_action(fr, 1)],
            chosen: &["ok"],
            passed: &[("a", "assigned to another order"), ("u", "unavailable")],
            ..Case::default()
        },
        Case {
            name: "excluded teams skipped and named",
            teams: vec![avail("declined", OWN, 1.0, &[fr]), avail("b", OWN, 3.0, &[fr])],
            actions: vec![teams_action(fr, 1)],
            exclude: &["declined", "no-such-team"],
            chosen: &["b"],
            passed: &[("declined", "excluded for this incident")],
            ..Case::default()
        },
        Case {
            name: "ties at the same place go to the lower id",
            teams: vec![avail("t-b", OWN, 5.0, &[fr]), avail("t-a", OWN, 5.0, &[fr]), avail("t-c", OWN, 5.0, &[fr])],
            actions: vec![teams_action(fr, 2)],
            chosen: &["t-a", "t-b"],
            ..Case::default()
        },
        Case {
            name: "a team with two needed capabilities is used once, by the first action",
            teams: vec![avail("both", OWN, 1.0, &[fr, "evacuation"]), avail("evac", OWN, 6.0, &["evacuation"])],
            actions: vec![teams_action(fr, 1), teams_action("evacuation", 1)],
            chosen: &["both", "evac"],
            passed: &[("both", "proposed above for flood_rescue (action 0)")],
            ..Case::default()
        },
        Case {
            name: "the second action is short when its only team went to the first",
            teams: vec![avail("both", OWN, 1.0, &[fr, "evacuation"])],
            actions: vec![teams_action("evacuation", 1), teams_action(fr, 1)],
            chosen: &["both"],
            shortfalls: &[("team:flood_rescue", 1, 0)],
            ..Case::default()
        },
        Case {
            name: "the same capability asked twice takes different teams",
            teams: vec![avail("a", OWN, 1.0, &[fr]), avail("b", OWN, 2.0, &[fr])],
            actions: vec![teams_action(fr, 1), teams_action(fr, 2)],
            chosen: &["a", "b"],
            passed: &[("a", "proposed above for flood_rescue (action 0)")],
            shortfalls: &[("team:flood_rescue", 2, 1)],
            ..Case::default()
        },
        Case {
            name: "no team with the capability at all",
            teams: vec![avail("a", OWN, 1.0, &["medical"])],
            actions: vec![teams_action("hazmat", 2)],
            shortfalls: &[("team:hazmat", 2, 0)],
            ..Case::default()
        },
        Case {
            name: "zero teams asked: nothing, no shortfall",
            teams: vec![avail("a", OWN, 1.0, &[fr])],
            actions: vec![teams_action(fr, 0)],
            ..Case::default()
        },
    ];
    for case in cases {
        let req = request(case.actions.clone(), case.exclude);
        let p = propose(&Resources::new(case.teams.clone(), vec![]), &req, &neighbours(), &case.settings);
        assert_eq!(chosen(&p), case.chosen, "{}: chosen", case.name);
        let got = passed(&p);
        assert_eq!(got.len(), case.passed.len(), "{}: passed over {got:?}", case.name);
        for ((team, why), (want_team, want_why)) in got.iter().zip(case.passed) {
            assert_eq!(team, want_team, "{}", case.name);
            assert!(why.starts_with(want_why), "{}: {why:?} should start with {want_why:?}", case.name);
        }
        let shortfalls: Vec<(&str, u64, u64)> =
            p.shortfalls.iter().map(|s| (s.what.as_str(), s.needed, s.found)).collect();
        assert_eq!(shortfalls, case.shortfalls, "{}: shortfalls", case.name);
        for (i, t) in p.teams.iter().enumerate() {
            let first_of_action = i == 0 || p.teams[i - 1].action != t.action;
            if first_of_action {
                assert_eq!(t.rank, 1, "{}", case.name);
            }
            assert_eq!(t.borrowed, t.province != OWN, "{}", case.name);
        }
    }
}

#[test]
fn explanations_in_plain_words() {
    let fr = "flood_rescue";
    let teams = vec![
        avail("n1", "350000", 3.0, &[fr]),
        avail("o1", OWN, 12.4, &[fr]),
        avail("o2", OWN, 30.0, &[fr]),
        avail("f1", "350000", 45.0, &[fr]),
    ];
    let p = run(teams, vec![], &request(vec![teams_action(fr, 2)], &[]));
    assert_eq!(
        p.teams[0].explanation,
        "nearest available flood_rescue team in 330000, 12.4 km, ETA 12 min; 1 nearer team passed over"
    );
    assert_eq!(p.teams[1].explanation, "2nd nearest available flood_rescue team in 330000, 30.0 km, ETA 30 min");
    assert_eq!(p.teams[0].passed_over[0].why, "in 350000, a neighbour, while 330000 had enough");
    assert!((p.teams[0].passed_over[0].distance_km - 3.0).abs() < 1e-6);
    assert!((p.teams[0].distance_km - 12.4).abs() < 1e-6);
    assert_eq!(p.teams[0].eta_min, 12);
    assert_eq!(p.teams[0].node, "node-330000");
    assert_eq!(p.teams[0].name, "Team o1");

    // Short of 3: the nearest neighbour team is borrowed, and says why.
    let teams =
        vec![avail("n1", "350000", 3.0, &[fr]), avail("o1", OWN, 12.4, &[fr]), avail("n2", "350000", 4.0, &[fr])];
    let p = run(teams, vec![], &request(vec![teams_action(fr, 3)], &[]));
    assert_eq!(chosen(&p), ["o1", "n1", "n2"]);
    assert_eq!(
        p.teams[1].explanation,
        "borrowed from 350000, a neighbour of 330000: 330000 had 1 of the 3 needed; nearest available flood_rescue team \
         there, 3.0 km, ETA 3 min"
    );
    assert_eq!(p.teams[2].rank, 3);
    assert!(p.teams[1].borrowed && !p.teams[0].borrowed);
    assert!(p.teams.iter().all(|t| t.passed_over.is_empty()), "the nearer teams were all taken");

    // Beyond the neighbours.
    let teams = vec![avail("x1", "440000", 300.0, &[fr])];
    let p = run(teams, vec![], &request(vec![teams_action(fr, 1)], &[]));
    assert_eq!(
        p.teams[0].explanation,
        "borrowed from 440000, beyond 330000's neighbours: 330000 and its neighbours had 0 of the 1 needed; nearest \
         available flood_rescue team beyond them, 300.0 km, ETA 300 min"
    );

    // ETA follows the speed; an unusable speed falls back to 60 km/h with a note.
    let res = Resources::new(vec![avail("o1", OWN, 45.0, &[fr])], vec![]);
    let req = request(vec![teams_action(fr, 1)], &[]);
    let slow = propose(&res, &req, &neighbours(), &Settings { speed_kmh: 30.0, ..Settings::default() });
    assert_eq!(slow.teams[0].eta_min, 90);
    for bad in [0.0, -5.0, f64::NAN, f64::INFINITY] {
        let p = propose(&res, &req, &neighbours(), &Settings { speed_kmh: bad, ..Settings::default() });
        assert_eq!(p.teams[0].eta_min, 45);
        assert_eq!(p.notes.len(), 1, "{bad}");
    }
}

#[test]
fn shortfall_explains_what_exists() {
    use TeamStatus::{Assigned, Unavailable};
    let fr = "flood_rescue";
    let teams = vec![
        team("a", OWN, 1.0, &[fr], Assigned),
        team("b", OWN, 2.0, &[fr], Assigned),
        team("c", OWN, 3.0, &[fr], Unavailable),
        avail("d", OWN, 4.0, &[fr]),
        avail("e", OWN, 5.0, &[fr]),
    ];
    let p = run(teams, vec![], &request(vec![teams_action(fr, 4)], &["e"]));
    assert_eq!(chosen(&p), ["d"]);
    assert_eq!(p.shortfalls.len(), 1);
    assert_eq!(
        p.shortfalls[0].explanation,
        "found 1 of the 4 flood_rescue teams needed: of the 5 teams with flood_rescue, 2 assigned to other orders, 1 \
         unavailable and 1 excluded for this incident"
    );
}

#[test]
fn passed_over_is_bounded_and_lists_each_team_once() {
    let fr = "flood_rescue";
    let mut teams: Vec<Team> =
        (0..30).map(|i| team(&format!("busy-{i:02}"), OWN, 1.0 + i as f64, &[fr], TeamStatus::Assigned)).collect();
    teams.extend((0..10).map(|i| avail(&format!("med-{i:02}"), OWN, 0.5 + i as f64, &["medical"])));
    teams.push(avail("ok-1", OWN, 50.0, &[fr]));
    teams.push(avail("ok-2", OWN, 60.0, &[fr]));
    let p = run(teams, vec![], &request(vec![teams_action(fr, 2)], &[]));
    assert_eq!(chosen(&p), ["ok-1", "ok-2"]);
    let all = passed(&p);
    let capable = all.iter().filter(|(_, why)| why == "assigned to another order").count();
    let lacking = all.iter().filter(|(_, why)| why == "lacks flood_rescue").count();
    assert_eq!((capable, lacking), (PASSED_OVER_MAX, PASSED_OVER_LACKING));
    assert!(p.teams[1].passed_over.is_empty(), "already listed under the first choice");
    let d: Vec<f64> = p.teams[0].passed_over.iter().map(|o| o.distance_km).collect();
    assert!(d.windows(2).all(|w| w[0] <= w[1]), "nearest first: {d:?}");
    assert_eq!(p.teams[0].passed_over[0].team, "med-00");
}

#[test]
fn items_split_never_over_stock_and_shortfall() {
    let stock = vec![
        stockpile("s-own-near", OWN, 5.0, &[("tent", 120), ("quilt", 1000)]),
        stockpile("s-own-far", OWN, 40.0, &[("tent", 200)]),
        stockpile("s-nb", "350000", 2.0, &[("tent", 1000)]),
        stockpile("s-empty", OWN, 1.0, &[("tent", 0), ("quilt", 0)]),
    ];
    // One stockpile is enough.
    let p = run(vec![], stock.clone(), &request(vec![item_action("quilt", 300)], &[]));
    assert_eq!(p.items.len(), 1);
    assert_eq!((p.items[0].stockpile.as_str(), p.items[0].qty), ("s-own-near", 300));
    assert_eq!(
        p.items[0].explanation,
        "nearest stockpile with quilt left in 330000, 5.0 km, ETA 5 min: all 300 needed"
    );
    assert!(p.shortfalls.is_empty());

    // Split: own province first, nearest first, then the neighbour; never more than held.
    let p = run(vec![], stock.clone(), &request(vec![item_action("tent", 500)], &[]));
    let got: Vec<(&str, u64, bool)> = p.items.iter().map(|i| (i.stockpile.as_str(), i.qty, i.borrowed)).collect();
    assert_eq!(got, [("s-own-near", 120, false), ("s-own-far", 200, false), ("s-nb", 180, true)]);
    assert_eq!(
        p.items[0].explanation,
        "nearest stockpile with tent left in 330000, 5.0 km, ETA 5 min: 120 of the 500 needed (all it holds)"
    );
    assert!(
        p.items[2].explanation.starts_with("borrowed from 350000, a neighbour of 330000: 330000 had 320 of the 500")
    );
    assert!(p.items[2].explanation.ends_with("the remaining 180 of the 500 needed"));
    assert!(p.shortfalls.is_empty());

    // Two actions for the same item share the stock; the second is short.
    let p = run(vec![], stock.clone(), &request(vec![item_action("tent", 1200), item_action("tent", 200)], &[]));
    let mut per_stockpile: BTreeMap<&str, u64> = BTreeMap::new();
    for i in &p.items {
        *per_stockpile.entry(&i.stockpile).or_default() += i.qty;
    }
    assert_eq!(per_stockpile, BTreeMap::from([("s-nb", 1000), ("s-own-far", 200), ("s-own-near", 120)]));
    let short: Vec<(usize, &str, u64, u64)> =
        p.shortfalls.iter().map(|s| (s.action, s.what.as_str(), s.needed, s.found)).collect();
    assert_eq!(short, [(1, "item:tent", 200, 120)]);
    assert_eq!(
        p.shortfalls[0].explanation,
        "found 120 of the 200 tent needed: stockpiles with valid coordinates hold 1320 in all, 1200 of it proposed \
         above for other actions"
    );
    assert!(p.items.iter().filter(|i| i.action == 1).any(|i| i.explanation.contains("all it has left")));

    // An item nobody holds; a huge quantity.
    let p = run(vec![], stock, &request(vec![item_action("excavator", 3), item_action("quilt", u64::MAX)], &[]));
    let short: Vec<(&str, u64, u64)> = p.shortfalls.iter().map(|s| (s.what.as_str(), s.needed, s.found)).collect();
    assert_eq!(short, [("item:excavator", 3, 0), ("item:quilt", u64::MAX, 1000)]);
}

#[test]
fn empty_resources() {
    let req = request(vec![teams_action("flood_rescue", 3), item_action("tent", 10)], &["x"]);
    let p = propose(&Resources::new(vec![], vec![]), &req, &Neighbours::new(), &Settings::default());
    assert!(p.teams.is_empty() && p.items.is_empty());
    let short: Vec<(&str, u64, u64)> = p.shortfalls.iter().map(|s| (s.what.as_str(), s.needed, s.found)).collect();
    assert_eq!(short, [("team:flood_rescue", 3, 0), ("item:tent", 10, 0)]);
    let empty = request(vec![], &[]);
    assert_eq!(run(vec![], vec![], &empty), Proposal::default());
}

#[test]
fn bad_coordinates_never_chosen_never_panic() {
    let fr = "flood_rescue";
    let bad = [
        (f64::NAN, 120.0),
        (30.0, f64::NAN),
        (f64::INFINITY, 120.0),
        (30.0, f64::NEG_INFINITY),
        (91.0, 120.0),
        (-90.5, 120.0),
        (30.0, 180.5),
        (1e308, -1e308),
    ];
    let mut teams = vec![avail("good", OWN, 50.0, &[fr])];
    let mut stock = vec![stockpile("good-s", OWN, 50.0, &[("tent", 5)])];
    for (i, (lat, lon)) in bad.iter().enumerate() {
        teams.push(Team { id: format!("bad-{i}"), lat: *lat, lon: *lon, ..avail("", OWN, 0.0, &[fr]) });
        stock.push(Stockpile {
            id: format!("bad-s-{i}"),
            lat: *lat,
            lon: *lon,
            ..stockpile("", OWN, 0.0, &[("tent", 9)])
        });
    }
    let mut res = Resources::new(teams, stock);
    assert_eq!(res.problems().len(), 2 * bad.len());
    assert!(res.update_team_status("bad-0", TeamStatus::Assigned));
    assert!(res.update_team_status("bad-0", TeamStatus::Available));
    let req = request(vec![teams_action(fr, 3), item_action("tent", 10)], &[]);
    let p = propose(&res, &req, &neighbours(), &Settings::default());
    assert_eq!(chosen(&p), ["good"]);
    assert_eq!(p.items.iter().map(|i| i.stockpile.as_str()).collect::<Vec<_>>(), ["good-s"]);
    assert!(passed(&p).is_empty());
    assert_eq!(p.shortfalls.len(), 2);

    // A bad destination: nothing proposed, every action short, a note.
    for (lat, lon) in bad {
        let req = Request { destination: (lat, lon), ..req.clone() };
        let p = propose(&res, &req, &neighbours(), &Settings::default());
        assert!(p.teams.is_empty() && p.items.is_empty());
        assert_eq!(p.shortfalls.len(), 2);
        assert!(p.shortfalls.iter().all(|s| s.explanation.ends_with("the destination is not a valid position")));
        assert_eq!(p.notes.len(), 1);
    }
}

#[test]
fn duplicate_ids_are_dropped() {
    let fr = "flood_rescue";
    let teams = vec![avail("dup", OWN, 1.0, &[fr]), avail("dup", OWN, 2.0, &[fr]), avail("ok", OWN, 3.0, &[fr])];
    let stock = vec![stockpile("d", OWN, 1.0, &[("tent", 1)]), stockpile("d", OWN, 1.0, &[("tent", 1)])];
    let res = Resources::new(teams, stock);
    assert_eq!(res.problems().len(), 2);
    assert!(res.team("dup").is_none());
    let p = propose(&res, &request(vec![teams_action(fr, 2)], &[]), &neighbours(), &Settings::default());
    assert_eq!(chosen(&p), ["ok"]);
}

#[test]
fn status_updates_move_teams_in_and_out() {
    let fr = "flood_rescue";
    let mut res = Resources::new(vec![avail("a", OWN, 1.0, &[fr]), avail("b", OWN, 2.0, &[fr])], vec![]);
    let req = request(vec![teams_action(fr, 1)], &[]);
    let pick = |res: &Resources| chosen(&propose(res, &req, &neighbours(), &Settings::default())).join(",");
    assert_eq!(pick(&res), "a");
    assert!(res.update_team_status("a", TeamStatus::Assigned));
    assert_eq!(pick(&res), "b");
    assert!(res.update_team_status("b", TeamStatus::Unavailable));
    assert_eq!(pick(&res), "");
    assert!(res.update_team_status("a", TeamStatus::Available));
    assert!(res.update_team_status("a", TeamStatus::Available), "setting the same status is fine");
    assert_eq!(pick(&res), "a");
    assert!(!res.update_team_status("nobody", TeamStatus::Available));
    assert_eq!(res.team("b").unwrap().status, TeamStatus::Unavailable);
}

#[test]
fn huge_numbers_do_not_panic() {
    let fr = "flood_rescue";
    let teams: Vec<Team> = (0..50).map(|i| avail(&format!("t{i:02}"), OWN, i as f64, &[fr])).collect();
    let stock = vec![stockpile("s", OWN, 1.0, &[("tent", u64::MAX)]), stockpile("s2", OWN, 2.0, &[("tent", u64::MAX)])];
    let res = Resources::new(teams, stock);
    let req =
        request(vec![teams_action(fr, u32::MAX), item_action("tent", u64::MAX), item_action("tent", u64::MAX)], &[]);
    for candidates in [0, 1, 3, usize::MAX] {
        let settings = Settings { candidates, speed_kmh: f64::MIN_POSITIVE, ..Settings::default() };
        let p = propose(&res, &req, &neighbours(), &settings);
        assert_eq!(p.teams.len(), 50);
        assert_eq!(p.teams.last().unwrap().rank, 50);
        assert_eq!(p.teams[1].eta_min, u32::MAX, "saturated");
        assert_eq!(p.items.len(), 2);
        assert_eq!(p.shortfalls.len(), 1, "only the team action is short: each tent action is met by one stockpile");
    }
}

#[test]
fn deterministic_and_independent_of_input_order() {
    let mut rng = StdRng::seed_from_u64(7);
    let caps = ["flood_rescue", "medical", "evacuation", "search_rescue"];
    let provinces = [OWN, "350000", "320000", "440000"];
    let statuses = [TeamStatus::Available, TeamStatus::Available, TeamStatus::Assigned, TeamStatus::Unavailable];
    let mut teams: Vec<Team> = (0..400)
        .map(|i| {
            let n = rng.random_range(1..=3);
            let tc: Vec<&str> = (0..n).map(|_| caps[rng.random_range(0..caps.len())]).collect();
            let mut t = team(
                &format!("t{i}"),
                provinces[rng.random_range(0..4)],
                0.0,
                &tc,
                statuses[rng.random_range(0..statuses.len())],
            );
            // A coarse grid so that ties happen.
            t.lat = DEST.0 + f64::from(rng.random_range(-20..=20)) * 0.05;
            t.lon = DEST.1 + f64::from(rng.random_range(-20..=20)) * 0.05;
            t
        })
        .collect();
    let mut stock: Vec<Stockpile> = (0..100)
        .map(|i| {
            let mut s = stockpile(
                &format!("s{i}"),
                provinces[rng.random_range(0..4)],
                0.0,
                &[("tent", rng.random_range(0..50))],
            );
            s.lat = DEST.0 + f64::from(rng.random_range(-10..=10)) * 0.1;
            s.lon = DEST.1 + f64::from(rng.random_range(-10..=10)) * 0.1;
            s
        })
        .collect();
    let req = request(
        vec![
            teams_action("flood_rescue", 5),
            teams_action("medical", 4),
            teams_action("evacuation", 30),
            item_action("tent", 900),
        ],
        &["t3", "t17"],
    );
    let first = run(teams.clone(), stock.clone(), &req);
    assert!(first.teams.len() >= 20 && !first.items.is_empty());
    for round in 0..5 {
        match round {
            0 => {
                teams.reverse();
                stock.reverse();
            }
            _ => {
                teams.rotate_left(37 * round);
                stock.rotate_left(11 * round);
            }
        }
        for settings in [Settings::default(), Settings { candidates: 1, ..Settings::default() }] {
            let again = propose(&Resources::new(teams.clone(), stock.clone()), &req, &neighbours(), &settings);
            assert_eq!(again, first, "round {round}");
        }
    }
    // Ties are broken by id at equal distance (compared to the metre).
    let mut ties = 0;
    for w in first.teams.windows(2) {
        if w[0].action == w[1].action && w[0].province == w[1].province && w[0].borrowed == w[1].borrowed {
            let (a, b) = ((w[0].distance_km * 1000.0).round(), (w[1].distance_km * 1000.0).round());
            assert!(a < b || (a == b && w[0].team < w[1].team), "{} then {}", w[0].team, w[1].team);
            ties += usize::from(a == b);
        }
    }
    assert!(ties > 0, "the grid makes ties");
}

/// The R-tree (unit vectors, batches re-ranked by Haversine) against a brute-force sort, with
/// points near the poles and across the antimeridian where degrees mislead.
#[test]
fn nearest_matches_brute_force_everywhere() {
    let mut rng = StdRng::seed_from_u64(42);
    let haversine = |a: (f64, f64), b: (f64, f64)| {
        use geo::{Distance, Haversine, Point};
        Haversine.distance(Point::new(a.1, a.0), Point::new(b.1, b.0))
    };
    for round in 0..40 {
        let (clat, clon) = match round % 4 {
            0 => (rng.random_range(-60.0..60.0), rng.random_range(-180.0..180.0)),
            1 => (rng.random_range(80.0..90.0), rng.random_range(-180.0..180.0)),
            2 => (rng.random_range(-30.0..30.0), 179.9),
            _ => (-89.0, 0.0),
        };
        let spread: f64 = [0.5, 5.0, 60.0][round % 3];
        let teams: Vec<Team> = (0..300)
            .map(|i| {
                let mut t = avail(&format!("t{i:03}"), OWN, 0.0, &["medical"]);
                t.lat = (clat + rng.random_range(-spread..spread)).clamp(-90.0, 90.0);
                let mut lon: f64 = clon + rng.random_range(-spread..spread) * 3.0;
                while lon > 180.0 {
                    lon -= 360.0;
                }
                while lon < -180.0 {
                    lon += 360.0;
                }
                t.lon = lon;
                t
            })
            .collect();
        let dest = (clat, clon);
        let mut want: Vec<(u64, &str)> =
            teams.iter().map(|t| (haversine(dest, (t.lat, t.lon)).round() as u64, t.id.as_str())).collect();
        want.sort();
        let want: Vec<&str> = want.iter().take(12).map(|(_, id)| *id).collect();
        let res = Resources::new(teams.clone(), vec![]);
        let req = Request { destination: dest, ..request(vec![teams_action("medical", 12)], &[]) };
        for candidates in [1, 4, 64] {
            let p = propose(&res, &req, &Neighbours::new(), &Settings { candidates, ..Settings::default() });
            assert_eq!(chosen(&p), want, "round {round}, candidates {candidates}");
        }
    }
}

#[test]
fn serializes() {
    let p = run(vec![avail("a", OWN, 1.0, &["medical"])], vec![], &request(vec![teams_action("medical", 1)], &[]));
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["teams"][0]["team"], "a");
    let back: Proposal = serde_json::from_value(json).unwrap();
    assert_eq!(back, p);
    let status: TeamStatus = serde_json::from_str("\"unavailable\"").unwrap();
    assert_eq!(status, TeamStatus::Unavailable);
    let s: Settings = serde_json::from_str("{}").unwrap();
    assert_eq!(s, Settings::default());
    fn shareable<T: Send + Sync>() {}
    shareable::<Resources>();
}
