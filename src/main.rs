//! Thin binary: hands over to the library, which never returns.

fn main() {
    pivot_init::run()
}
