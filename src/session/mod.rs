//! User-study sessions and annotation reviews: blinding, seeded order, append-and-flush logs.

pub mod annotate;
pub mod audit;
pub mod review;
pub mod reviewer;
pub mod save;
