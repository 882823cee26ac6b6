//! pivot-init: PID 1 that waits for a volume, mounts it, runs its hook,
//! pivots onto it and execs its init. The whole boot is [`boot::run`]; the
//! other modules are its stages and what they share.
//!
//! Layers, bottom to top. A module imports from its own layer and the
//! layers below, never from above, and no imports go in a circle (the unit
//! test in `src/layers.rs` reads this list and every `crate::` reference):
//! 1. `sys`: the boundary to the system (the `Sys` trait, `RealSys`, the
//!    fake, `SysError`); it imports nothing of the crate.
//! 2. Plain data and pure logic: `stage`, `spec`, `mountopts`, `probe`,
//!    `uevent`, `cloud`, `cpio`, `kmsg`, `config` (the settings), `verify`
//!    (the kernel's exec rules), `modules` (modprobe without modprobe),
//!    `policy` (the failure policy as a decision), `elfdeps` (what a
//!    program needs from the dynamic loader, for `pivot-mkinitramfs`),
//!    `bootentry` (boot entries, version order, the kexec'd kernel's
//!    command line and header checks), `bootcount` (the boot count's state
//!    file and decisions).
//! 3. `error`: the boot's one error type, wrapping the errors below.
//! 4. The stages and their parts: `prepare`, `node`, `sysblock`,
//!    `matching`, `wait`, `tries` (boot counting on the boot disk), `fsck`,
//!    `mount`, `preflight`, `hook`, `kmods`, `switch`, `exec`, `fallback`,
//!    `summary`, `kexec` (booting the volume's own kernel), `handback`
//!    (systemd's way back at shutdown: set up before the exec, and PID 1's
//!    second life as `/run/initramfs/shutdown`).
//! 5. `boot` (the pipeline) and `cli` (`plan`, `check`, `bless`, `status`).

pub mod boot;
pub mod bootcount;
pub mod bootentry;
pub mod cli;
pub mod cloud;
pub mod config;
pub mod cpio;
pub mod elfdeps;
pub mod error;
pub mod exec;
pub mod fallback;
pub mod fsck;
pub mod handback;
pub mod hook;
pub mod kexec;
pub mod kmods;
pub mod kmsg;
pub mod matching;
pub mod modules;
pub mod mount;
pub mod mountopts;
pub mod node;
pub mod policy;
pub mod preflight;
pub mod prepare;
pub mod probe;
pub mod spec;
pub mod stage;
pub mod summary;
pub mod switch;
pub mod sys;
pub mod sysblock;
pub mod tries;
pub mod uevent;
pub mod verify;
pub mod wait;

pub use boot::run;

#[cfg(test)]
mod layers;
