//! Reading blocks: the readings of one series (device, measurement) that one batch stored,
//! packed into one row.
//!
//! A node under load stores hundreds of thousands of readings a second; one row per reading
//! makes the database's B-tree the limit. A block is one row per series and batch, so a batch of
//! 20,000 readings from 1,000 stations is 1,000 rows. A reading's identity stays (device, name,
//! time): the store never puts a time into a block when a block of the same series holds it
//! already (see `store_impl!`'s `write`), so a reading is stored exactly once.
//!
//! The packing, version 1 (all integers LEB128 varints; times as zigzag deltas):
//!
//! ```text
//! block   := 0x01 count reading*
//! reading := dt flags [unit] [value] [sum]
//!   dt    := zigzag(time_us - previous time_us), the first relative to the block's first_us
//!   flags := kind (bits 0-2: 0 none, 1 number, 2 string, 3 false, 4 true, 5 data)
//!            | 0x08 unit follows | 0x10 sum follows
//!   unit, string, data := length bytes;  number, sum := f64 little-endian
//! ```
//!
//! Decoding checks every length against what is left, so a damaged block gives an error, never a
//! panic or a read past its end.

use super::NewReading;

const VERSION: u8 = 1;
const KIND_MASK: u8 = 0x07;
const UNIT: u8 = 0x08;
const SUM: u8 = 0x10;

/// A reading as a block holds it (the series is the block's).
#[derive(Debug, Clone, PartialEq)]
pub struct Packed {
    pub time_us: i64,
    pub unit: Option<String>,
    pub value: PackedValue,
    pub sum: Option<f64>,
}

/// A reading's value.
#[derive(Debug, Clone, PartialEq)]
pub enum PackedValue {
    None,
    Number(f64),
    String(String),
    Bool(bool),
    Data(Vec<u8>),
}

impl PackedValue {
    pub fn number(&self) -> Option<f64> {
        match self {
            PackedValue::Number(x) => Some(*x),
            _ => None,
        }
    }
}

/// Why a block cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("damaged reading block: {0}")]
pub struct BlockError(pub &'static str);

/// The readings of one series in a batch, sorted by time, each time once.
#[derive(Debug)]
pub struct Group<'a> {
    pub readings: Vec<&'a NewReading>,
    /// Whether the device is in the registry (the registry does not change while a node runs,
    /// so the readings of one device in one batch agree).
    pub registered: bool,
    pub received_at_ms: i64,
}

impl<'a> Group<'a> {
    /// (device, name).
    pub fn key(&self) -> (&'a str, &'a str) {
        let r = self.readings[0];
        (&*r.device, &*r.name)
    }

    /// The first and the last time.
    pub fn span(&self) -> (i64, i64) {
        (self.readings[0].time_us, self.readings[self.readings.len() - 1].time_us)
    }
}

/// Groups a batch's readings by series, in series order; in each, sorted by time with the first
/// reading of each time in the batch kept. Every group holds at least one reading.
pub fn group(readings: &[NewReading]) -> Vec<Group<'_>> {
    let mut index: std::collections::HashMap<(&str, &str), usize> = std::collections::HashMap::new();
    let mut groups: Vec<Group<'_>> = Vec::new();
    let mut last: Option<((&str, &str), usize)> = None;
    for r in readings {
        let key = (&*r.device, &*r.name);
        // A message's readings come together: most of the time the series is the last one's.
        let at = match last {
            Some((k, at)) if k == key => at,
            _ => *index.entry(key).or_insert_with(|| {
                groups.push(Group { readings: Vec::new(), registered: r.registered, received_at_ms: r.received_at_ms });
                groups.len() - 1
            }),
        };
        last = Some((key, at));
        let g = &mut groups[at];
        g.received_at_ms = g.received_at_ms.min(r.received_at_ms);
        g.readings.push(r);
    }
    for g in &mut groups {
        // Stable: of two readings with one time, the one earlier in the batch stays.
        g.readings.sort_by_key(|r| r.time_us);
        g.readings.dedup_by_key(|r| r.time_us);
    }
    groups.sort_unstable_by(|a, b| a.key().cmp(&b.key()));
    groups
}

/// Packs readings (all of one series, sorted by time, no time twice) whose first time is
/// `readings[0].time_us`.
pub fn encode(readings: &[&NewReading]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + readings.len() * 12);
    out.push(VERSION);
    put_varint(&mut out, readings.len() as u64);
    let mut previous = readings.first().map_or(0, |r| r.time_us);
    for r in readings {
        put_varint(&mut out, zigzag(r.time_us.wrapping_sub(previous)));
        previous = r.time_us;
        let kind = if r.value_num.is_some() {
            1
        } else if r.value_str.is_some() {
            2
        } else if let Some(b) = r.value_bool {
            if b { 4 } else { 3 }
        } else if r.value_data.is_some() {
            5
        } else {
            0
        };
        let flags = kind | if r.unit.is_some() { UNIT } else { 0 } | if r.sum.is_some() { SUM } else { 0 };
        out.push(flags);
        if let Some(unit) = &r.unit {
            put_bytes(&mut out, unit.as_bytes());
        }
        match kind {
            1 => out.extend_from_slice(&r.value_num.unwrap_or_default().to_le_bytes()),
            2 => put_bytes(&mut out, r.value_str.as_deref().unwrap_or_default().as_bytes()),
            5 => put_bytes(&mut out, r.value_data.as_deref().unwrap_or_default()),
            _ => {}
        }
        if let Some(sum) = r.sum {
            out.extend_from_slice(&sum.to_le_bytes());
        }
    }
    out
}

/// Unpacks a block whose first reading is at `first_us`.
pub fn decode(first_us: i64, bytes: &[u8]) -> Result<Vec<Packed>, BlockError> {
    let mut r = Reader { bytes, at: 0 };
    if r.byte()? != VERSION {
        return Err(BlockError("unknown version"));
    }
    let count = r.varint()?;
    // Every reading takes at least two bytes: a count beyond that is damage, not a reason to
    // reserve memory.
    if count > (bytes.len() as u64) / 2 {
        return Err(BlockError("count larger than the block"));
    }
    let mut out = Vec::with_capacity(count as usize);
    let mut time_us = first_us;
    for _ in 0..count {
        time_us = time_us.wrapping_add(unzigzag(r.varint()?));
        let flags = r.byte()?;
        let unit = if flags & UNIT != 0 { Some(r.string()?) } else { None };
        let value = match flags & KIND_MASK {
            0 => PackedValue::None,
            1 => PackedValue::Number(r.f64()?),
            2 => PackedValue::String(r.string()?),
            3 => PackedValue::Bool(false),
            4 => PackedValue::Bool(true),
            5 => PackedValue::Data(r.bytes()?.to_vec()),
            _ => return Err(BlockError("unknown value kind")),
        };
        let sum = if flags & SUM != 0 { Some(r.f64()?) } else { None };
        out.push(Packed { time_us, unit, value, sum });
    }
    if r.at != bytes.len() {
        return Err(BlockError("bytes after the last reading"));
    }
    Ok(out)
}

/// Only the times of a block (to find which readings it already holds), without building the
/// readings.
pub fn times(first_us: i64, bytes: &[u8]) -> Result<Vec<i64>, BlockError> {
    Ok(decode(first_us, bytes)?.into_iter().map(|p| p.time_us).collect())
}

/// One bucket of downsampled readings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub n: i64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub last_time_us: i64,
}

/// Numeric readings folded into buckets of a fixed width (retention's per-minute and per-hour
/// aggregates). A bucket starts at a multiple of the width (toward zero, as SQL's integer
/// division).
#[derive(Debug)]
pub struct Buckets {
    width_us: i64,
    buckets: std::collections::HashMap<(String, String, i64), Bucket>,
}

impl Buckets {
    pub fn new(width_us: i64) -> Buckets {
        Buckets { width_us, buckets: std::collections::HashMap::new() }
    }

    pub fn add(&mut self, device: &str, name: &str, time_us: i64, value: f64) {
        let start = (time_us / self.width_us) * self.width_us;
        self.buckets
            .entry((device.to_owned(), name.to_owned(), start))
            .and_modify(|b| {
                b.n += 1;
                b.sum += value;
                b.min = b.min.min(value);
                b.max = b.max.max(value);
                b.last_time_us = b.last_time_us.max(time_us);
            })
            .or_insert(Bucket { n: 1, sum: value, min: value, max: value, last_time_us: time_us });
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// The buckets in key order.
    pub fn into_rows(self) -> Vec<((String, String, i64), Bucket)> {
        let mut rows: Vec<_> = self.buckets.into_iter().collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        rows
    }
}

fn zigzag(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

fn unzigzag(x: u64) -> i64 {
    ((x >> 1) as i64) ^ -((x & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, BlockError> {
        let b = *self.bytes.get(self.at).ok_or(BlockError("ends early"))?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, BlockError> {
        let mut x = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            x |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(x);
            }
        }
        Err(BlockError("varint longer than 64 bits"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], BlockError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or(BlockError("ends early"))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn bytes(&mut self) -> Result<&'a [u8], BlockError> {
        let n = usize::try_from(self.varint()?).map_err(|_| BlockError("length too large"))?;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, BlockError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| BlockError("text is not UTF-8"))
    }

    fn f64(&mut self) -> Result<f64, BlockError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_le_bytes(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(time_us: i64) -> NewReading {
        NewReading {
            device: "d".into(),
            name: "rain".into(),
            time_us,
            unit: None,
            value_num: None,
            value_str: None,
            value_bool: None,
            value_data: None,
            sum: None,
            registered: true,
            received_at_ms: 0,
        }
    }

    fn packed(r: &NewReading) -> Packed {
        let value = if let Some(x) = r.value_num {
            PackedValue::Number(x)
        } else if let Some(s) = &r.value_str {
            PackedValue::String(s.clone())
        } else if let Some(b) = r.value_bool {
            PackedValue::Bool(b)
        } else if let Some(d) = &r.value_data {
            PackedValue::Data(d.clone())
        } else {
            PackedValue::None
        };
        Packed { time_us: r.time_us, unit: r.unit.as_deref().map(str::to_owned), value, sum: r.sum }
    }

    #[test]
    fn every_kind_of_reading_comes_back_as_it_went_in() {
        let cases: Vec<Vec<NewReading>> = vec![
            vec![reading(1_700_000_000_000_000)],
            vec![NewReading { value_num: Some(0.5), unit: Some("mm".into()), ..reading(10) }],
            vec![NewReading { value_num: Some(f64::MAX), ..reading(-5) }, reading(-4)],
            vec![NewReading { value_str: Some("走水 <script>".into()), ..reading(0) }],
            vec![
                NewReading { value_bool: Some(true), ..reading(1) },
                NewReading { value_bool: Some(false), ..reading(2) },
            ],
            vec![NewReading { value_data: Some(vec![0, 255, 7]), ..reading(3) }],
            vec![NewReading { sum: Some(12.25), ..reading(4) }],
            vec![NewReading { value_num: Some(-1.0), sum: Some(3.0), unit: Some("m".into()), ..reading(i64::MAX) }],
            vec![reading(i64::MIN), reading(0), reading(i64::MAX)],
            (0..1000)
                .map(|i| NewReading { value_num: Some(i as f64 * 0.1), ..reading(1_000_000 + i * 1_000) })
                .collect(),
        ];
        for case in cases {
            let refs: Vec<&NewReading> = case.iter().collect();
            let bytes = encode(&refs);
            let back = decode(case[0].time_us, &bytes).expect("decodes");
            assert_eq!(back, case.iter().map(packed).collect::<Vec<_>>());
            assert_eq!(
                times(case[0].time_us, &bytes).expect("times"),
                case.iter().map(|r| r.time_us).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn a_regular_series_packs_small() {
        let rs: Vec<NewReading> = (0..20)
            .map(|i| NewReading {
                value_num: Some(0.5),
                unit: Some("mm".into()),
                ..reading(1_700_000_000_000_000 + i * 1000)
            })
            .collect();
        let refs: Vec<&NewReading> = rs.iter().collect();
        // A 2-byte header; per reading the time delta (1 byte for the first, 2 after), flags,
        // unit (3) and value (8).
        assert_eq!(encode(&refs).len(), 2 + 13 + 19 * 14);
    }

    #[test]
    fn buckets_fold_exactly() {
        let mut b = Buckets::new(60);
        for (t, v) in [(0, 1.0), (59, 3.0), (60, -2.0), (-1, 7.0), (61, 4.0)] {
            b.add("d", "rain", t, v);
        }
        b.add("e", "rain", 0, 9.0);
        let rows = b.into_rows();
        let got: Vec<(&str, i64, Bucket)> = rows.iter().map(|((d, _, s), b)| (d.as_str(), *s, *b)).collect();
        let bucket = |n, sum, min, max, last_time_us| Bucket { n, sum, min, max, last_time_us };
        assert_eq!(
            got,
            vec![
                // -1 / 60 is 0 toward zero, as in SQL.
                ("d", 0, bucket(3, 11.0, 1.0, 7.0, 59)),
                ("d", 60, bucket(2, 2.0, -2.0, 4.0, 61)),
                ("e", 0, bucket(1, 9.0, 9.0, 9.0, 0)),
            ]
        );
    }

    #[test]
    fn a_batch_groups_by_series_in_time_order_first_of_a_time_wins() {
        let r = |device: &str, name: &str, t: i64, v: f64| NewReading {
            device: device.into(),
            name: name.to_owned().into(),
            value_num: Some(v),
            received_at_ms: t,
            ..reading(t)
        };
        let batch = vec![
            r("b", "rain", 3, 1.0),
            r("a", "rain", 2, 1.0),
            r("b", "rain", 1, 1.0),
            r("b", "rain", 3, 2.0),
            r("a", "level", 9, 1.0),
            r("b", "rain", 2, 1.0),
        ];
        let groups = group(&batch);
        type Row<'a> = ((&'a str, &'a str), Vec<(i64, Option<f64>)>, i64);
        let got: Vec<Row<'_>> = groups
            .iter()
            .map(|g| (g.key(), g.readings.iter().map(|r| (r.time_us, r.value_num)).collect(), g.received_at_ms))
            .collect();
        assert_eq!(
            got,
            vec![
                (("a", "level"), vec![(9, Some(1.0))], 9),
                (("a", "rain"), vec![(2, Some(1.0))], 2),
                (("b", "rain"), vec![(1, Some(1.0)), (2, Some(1.0)), (3, Some(1.0))], 1),
            ]
        );
        assert_eq!(groups[2].span(), (1, 3));
        assert!(group(&[]).is_empty());
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let rs = [NewReading { value_str: Some("abc".into()), sum: Some(1.0), unit: Some("mm".into()), ..reading(5) }];
        let refs: Vec<&NewReading> = rs.iter().collect();
        let good = encode(&refs);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "ends early"),
            (vec![2, 0], "unknown version"),
            (vec![1, 200, 1], "count larger than the block"),
            (vec![1, 1, 0, 6], "unknown value kind"),
            (vec![1, 1, 0, 1, 0, 0], "ends early"),
            (vec![1, 1, 0, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], "ends early"),
            (
                vec![1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                "varint longer than 64 bits",
            ),
            (vec![1, 1, 0, 2, 2, 0xc3, 0x28], "text is not UTF-8"),
            (vec![1, 0, 0], "bytes after the last reading"),
            (good[..good.len() - 1].to_vec(), "ends early"),
            ([good.clone(), vec![0]].concat(), "bytes after the last reading"),
        ];
        for (bytes, why) in cases {
            assert_eq!(decode(0, &bytes), Err(BlockError(why)), "{bytes:?}");
        }
        assert!(decode(5, &good).is_ok());
    }
}
