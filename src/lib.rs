//! pivot-init: PID 1 that waits for a volume, mounts it, runs its hook,
//! pivots onto it and execs its init. The whole boot is [`boot::run`]; the
//! other modules are its stages and what they share.

pub mod boot;
pub mod cli;
pub mod cloud;
pub mod config;
pub mod cpio;
pub mod elfdeps;
pub mod error;
pub mod exec;
pub mod hook;
pub mod kmods;
pub mod kmsg;
pub mod modules;
pub mod mount;
pub mod mountopts;
pub mod policy;
pub mod preflight;
pub mod probe;
pub mod switch;
pub mod sys;
pub mod uevent;
pub mod verify;
pub mod wait;

pub use boot::{Stage, run};
