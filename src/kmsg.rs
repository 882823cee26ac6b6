//! Our `log` backend: one `write()` per record to `/dev/kmsg` as
//! `<N>pivot-init: message`, or to the console (stderr) before `/dev` exists.

use std::fs::File;
use std::io::Write;
use std::sync::OnceLock;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Longest record we write; the kernel refuses longer kmsg writes.
pub const MAX_RECORD: usize = 1023;

static KMSG: OnceLock<File> = OnceLock::new();
static LOGGER: KmsgLogger = KmsgLogger;

struct KmsgLogger;

/// printk priority of a log level.
fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// The bytes of one record: `<N>pivot-init: msg\n` for kmsg (`with_prio`), or
/// `pivot-init: msg\n` for the console; never longer than [`MAX_RECORD`].
pub fn format_record(level: Level, msg: &str, with_prio: bool) -> Vec<u8> {
    let mut s = String::with_capacity(msg.len() + 16);
    if with_prio {
        s.push('<');
        s.push(char::from(b'0' + priority(level)));
        s.push('>');
    }
    s.push_str("pivot-init: ");
    // One record is one line: fold embedded newlines.
    for c in msg.chars() {
        s.push(if c == '\n' { ' ' } else { c });
    }
    if s.len() > MAX_RECORD - 1 {
        let mut cut = MAX_RECORD - 1;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s.push('\n');
    s.into_bytes()
}

impl Log for KmsgLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let msg = record.args().to_string();
        // Write errors are dropped: there is nowhere else to report them.
        match KMSG.get() {
            Some(mut f) => {
                let _ = f.write(&format_record(record.level(), &msg, true));
            }
            None => {
                let _ = std::io::stderr().write(&format_record(record.level(), &msg, false));
            }
        }
    }

    fn flush(&self) {}
}

/// Installs the logger (console until [`open_kmsg`] succeeds).
pub fn init() {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(LevelFilter::Info);
}

/// Switches output to the log device (`/dev/kmsg`, opened for writing);
/// once set, it stays.
pub fn use_device(f: File) {
    let _ = KMSG.set(f);
}

/// Applies `pivot.loglevel` (printk numbering, 0..7).
pub fn set_level(printk_level: u8) {
    log::set_max_level(match printk_level {
        0..=3 => LevelFilter::Error,
        4 => LevelFilter::Warn,
        5 | 6 => LevelFilter::Info,
        _ => LevelFilter::Debug,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_format() {
        assert_eq!(
            format_record(Level::Warn, "a\nb", true),
            b"<4>pivot-init: a b\n".to_vec()
        );
        assert_eq!(
            format_record(Level::Info, "x", false),
            b"pivot-init: x\n".to_vec()
        );
    }

    #[test]
    fn long_records_are_cut_on_a_char_boundary() {
        let msg = "é".repeat(2000);
        let r = format_record(Level::Error, &msg, true);
        assert!(r.len() <= MAX_RECORD);
        assert!(r.ends_with(b"\n"));
        assert!(std::str::from_utf8(&r).is_ok());
    }
}

/// Unit tests: a logger that keeps each thread's lines (a test runs in its
/// own thread), so a test can assert the exact `FAILED` line of a boot.
#[cfg(test)]
pub mod testlog {
    use std::cell::RefCell;

    use log::{LevelFilter, Log, Metadata, Record};

    thread_local! {
        static LINES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    struct Capture;

    impl Log for Capture {
        fn enabled(&self, _: &Metadata) -> bool {
            true
        }

        fn log(&self, r: &Record) {
            LINES.with(|l| l.borrow_mut().push(r.args().to_string()));
        }

        fn flush(&self) {}
    }

    static CAPTURE: Capture = Capture;

    /// Keeps this thread's log lines from now on (the logger is installed
    /// once per test process; a boot sets the level to `info`).
    pub fn start() {
        let _ = log::set_logger(&CAPTURE);
        log::set_max_level(LevelFilter::Info);
        LINES.with(|l| l.borrow_mut().clear());
    }

    /// The lines kept since [`start`] or the last `take`.
    pub fn take() -> Vec<String> {
        LINES.with(|l| std::mem::take(&mut *l.borrow_mut()))
    }
}
