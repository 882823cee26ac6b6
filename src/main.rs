//! Thin binary: as PID 1 it hands over to the library, which never returns;
//! otherwise it is the `plan`/`check` command-line tool.

fn main() {
    if rustix::process::getpid().is_init() {
        pivot_init::run()
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(pivot_init::cli::main(&args))
}
