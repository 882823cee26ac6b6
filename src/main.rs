//! Thin binary: as PID 1 it hands over to the library, which never returns;
//! otherwise it is the `plan`/`check` command-line tool.

fn main() {
    if pivot_init::sys::is_pid1() {
        pivot_init::run()
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(pivot_init::cli::main(&args))
}
