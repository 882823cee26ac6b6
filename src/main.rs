//! Thin binary: as PID 1 it hands over to the library, which never returns;
//! otherwise it is the `plan`/`check` command-line tool.
//!
//! `no_main`: the C start code calls `main` directly, without the Rust
//! runtime's start-up (stack-guard probing, an alternate signal stack,
//! SIGPIPE ignored: PID 1 would undo the last anyway). Under TCG each page of
//! code run for the first time is translated, so that is time on the boot
//! path. The arguments come from `main`'s own parameters: on musl,
//! `std::env::args` is empty without the runtime's start-up.
//! (Under `cargo test` the test harness brings its own `main`.)
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
use std::ffi::{c_char, c_int};

/// # Safety
/// Called by the C start code only, with the process's `argc`/`argv`.
#[cfg(not(test))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    // SAFETY: the C start code passes the process's argc/argv: argc valid
    // NUL-terminated strings, alive for the whole process.
    let args = unsafe { pivot_init::sys::args_from_c(argc, argv) };
    if pivot_init::sys::is_pid1() {
        pivot_init::run(args)
    }
    let args: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // Returned to the C start code, which exits with it (std::process::exit
    // would bring the Rust runtime's clean-up along; the tool's output is
    // written unbuffered, so nothing is left to flush).
    pivot_init::cli::main(&args)
}
