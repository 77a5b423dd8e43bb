//! Per-participant presentation order, reproducible from (seed, participant ID).
//!
//! Positions are balanced Latin-square style: a case's methods are rotated by `(offset + k) mod m`,
//! where `k` is the case's place in the participant's sequence and `offset` is drawn from the
//! participant's stream. So within one participant, any `m` consecutive cases that compare the same
//! `m` methods put every method in every position exactly once; across participants the offsets are
//! uniform, so positions balance there too. A participant's stream also decides the direction of the
//! rotation (for three or more methods) and, when the design shuffles cases, the case order.

use super::study::Study;
use crate::xai::perturb::SplitMix64;

/// One case as one participant sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCase {
    /// Index into `Study::cases`.
    pub case_index: usize,
    pub case_id: String,
    /// The methods in position order: left to right (side by side) or first to last (one at a time).
    pub methods: Vec<String>,
}

impl PlannedCase {
    /// 0-based position of `method`, if shown.
    pub fn position(&self, method: &str) -> Option<usize> {
        self.methods.iter().position(|m| m == method)
    }
}

/// The blinding letter of a 0-based position: A, B, C, …
pub fn letter(position: usize) -> String {
    char::from(b'A' + (position % 26) as u8).to_string()
}

/// FNV-1a: a stable hash of the participant ID (std's hashers may change between releases).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The participant's cases in presentation order, each with its methods in position order.
pub fn plan(study: &Study, participant: &str) -> Vec<PlannedCase> {
    let mut rng = SplitMix64::new(study.design.seed ^ fnv1a(participant).rotate_left(29));
    // Warm up: nearby seeds give unrelated streams after one step of SplitMix64 anyway, one more is free.
    rng.next_u64();
    let mut order: Vec<usize> = (0..study.cases.len()).collect();
    if study.design.shuffle_cases {
        for i in (1..order.len()).rev() {
            let j = rng.below(i + 1);
            order.swap(i, j);
        }
    }
    let offset = rng.next_u64();
    let reverse = rng.coin(0.5);
    order
        .iter()
        .enumerate()
        .map(|(k, &ci)| {
            let case = &study.cases[ci];
            let mut methods = case.methods.clone();
            let m = methods.len();
            if reverse && m > 2 {
                methods.reverse();
            }
            let shift = ((offset % m as u64) as usize + k) % m;
            methods.rotate_left(shift);
            PlannedCase { case_index: ci, case_id: case.id.clone(), methods }
        })
        .collect()
}
