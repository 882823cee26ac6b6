//! Our `log` backend: one `write()` per record to `/dev/kmsg` as
//! `<N>pivot-init: message`, or to the console (stderr) before `/dev` exists.

use std::fs::File;
use std::io::Write;
use std::sync::OnceLock;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Longest record we write, newline included. A longer write to /dev/kmsg
/// fails with EINVAL and the record is lost whole: the limit is 992 bytes
/// (`LOG_LINE_MAX`, 1024 - 32) up to at least Linux 6.1 (measured on the
/// test kernel: 992 taken, 993 refused); later kernels take 1024.
pub const MAX_RECORD: usize = 992;

/// What every record starts with after its `<N>` priority.
const PREFIX: &str = "pivot-init: ";

/// The longest message that fits one record whole: [`MAX_RECORD`] less
/// `<N>`, [`PREFIX`] and the newline.
pub const MAX_MESSAGE: usize = MAX_RECORD - "<N>".len() - PREFIX.len() - 1;

/// What marks the cut of [`fit_keeping_tail`].
pub const CUT: &str = " ... ";

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
    let mut r = Record992::new(level, with_prio);
    let _ = std::fmt::Write::write_str(&mut r, msg);
    r.finish().to_vec()
}

/// One record as it is formatted, on the stack (no allocation per log
/// line): the `<N>` priority, [`PREFIX`], the message with embedded
/// newlines folded (one record is one line), cut on a character boundary
/// where it would not fit, and the newline.
struct Record992 {
    buf: [u8; MAX_RECORD],
    len: usize,
    /// The message was cut: nothing more is taken.
    cut: bool,
}

impl Record992 {
    fn new(level: Level, with_prio: bool) -> Record992 {
        let mut r = Record992 {
            buf: [0; MAX_RECORD],
            len: 0,
            cut: false,
        };
        if with_prio {
            r.put(&[b'<', b'0' + priority(level), b'>']);
        }
        r.put(PREFIX.as_bytes());
        r
    }

    fn put(&mut self, bytes: &[u8]) {
        let dst = self.buf.get_mut(self.len..).unwrap_or_default();
        for (d, b) in dst.iter_mut().zip(bytes) {
            *d = if *b == b'\n' { b' ' } else { *b };
        }
        self.len = (self.len + bytes.len()).min(MAX_RECORD);
    }

    /// The record, its newline added.
    fn finish(&mut self) -> &[u8] {
        let end = self.len.min(MAX_RECORD - 1);
        if let Some(nl) = self.buf.get_mut(end) {
            *nl = b'\n';
        }
        self.buf.get(..=end).unwrap_or_default()
    }
}

impl std::fmt::Write for Record992 {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.cut {
            return Ok(());
        }
        let room = (MAX_RECORD - 1).saturating_sub(self.len);
        let mut take = s.len().min(room);
        if take < s.len() {
            self.cut = true;
            while !s.is_char_boundary(take) {
                take -= 1;
            }
        }
        self.put(s.as_bytes().get(..take).unwrap_or_default());
        Ok(())
    }
}

/// `msg` then `tail` as one message that fits one record
/// ([`MAX_MESSAGE`] bytes), so that the end of a long line survives the cut
/// [`format_record`] would make: e.g. `fit_keeping_tail("FAILED at wait:
/// <reason listing 16 disks>", "; action: oldinit /sbin/init.old")`.
/// Unchanged when it fits; else the end of `msg` gives way to [`CUT`] and
/// `tail` is kept whole. A tail longer than half a record is not kept whole:
/// then the middle of the whole line is cut, its start and end kept. Cuts
/// fall on character boundaries; the result is never longer than
/// [`MAX_MESSAGE`] bytes.
pub fn fit_keeping_tail(msg: &str, tail: &str) -> String {
    if msg.len() + tail.len() <= MAX_MESSAGE {
        return [msg, tail].concat();
    }
    let room = MAX_MESSAGE - CUT.len();
    if tail.len() <= MAX_MESSAGE / 2 {
        return [head(msg, room - tail.len()), CUT, tail].concat();
    }
    let whole = [msg, tail].concat();
    let start = head(&whole, room / 2);
    let end = end(&whole, room - start.len());
    [start, CUT, end].concat()
}

/// The longest start of `s` of at most `max` bytes, cut on a char boundary.
fn head(s: &str, max: usize) -> &str {
    let mut cut = max.min(s.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.get(..cut).unwrap_or_default()
}

/// The longest end of `s` of at most `max` bytes, cut on a char boundary.
fn end(s: &str, max: usize) -> &str {
    let mut cut = s.len().saturating_sub(max);
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    s.get(cut..).unwrap_or_default()
}

impl Log for KmsgLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let kmsg = KMSG.get();
        let mut r = Record992::new(record.level(), kmsg.is_some());
        let _ = std::fmt::write(&mut r, *record.args());
        // Write errors are dropped: there is nowhere else to report them.
        match kmsg {
            Some(mut f) => {
                let _ = f.write(r.finish());
            }
            None => {
                let _ = std::io::stderr().write(r.finish());
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
    fn a_message_of_max_message_bytes_is_one_whole_record() {
        let msg = "m".repeat(MAX_MESSAGE);
        let r = format_record(Level::Error, &msg, true);
        assert_eq!(r.len(), MAX_RECORD);
        assert!(r.ends_with(format!("{msg}\n").as_bytes()));
        let r = format_record(Level::Error, &format!("{msg}z"), true);
        assert_eq!(r.len(), MAX_RECORD);
        assert!(!r.contains(&b'z'));
    }

    #[test]
    fn what_fits_is_kept_as_it_is() {
        assert_eq!(
            fit_keeping_tail("FAILED at wait: x", "; action: wait"),
            "FAILED at wait: x; action: wait"
        );
        let msg = "a".repeat(MAX_MESSAGE - 10);
        let out = fit_keeping_tail(&msg, "0123456789");
        assert_eq!(out, format!("{msg}0123456789"));
    }

    /// The case of issue 22: a wait timeout listing 16 disks. The start of
    /// the reason and the whole action survive the record.
    #[test]
    fn a_long_reason_gives_way_to_the_action() {
        let disks: Vec<String> = (0..16)
            .map(|i| format!("nvme{i}n1 (259:{i}) ext4 LABEL=data{i} UUID=0b5e2f8a-7c4d-4e21-9a3b-5d6c7e8f90{i:02}"))
            .collect();
        let msg = format!(
            "FAILED at wait: no device matching LABEL=root appeared within 300 s; block devices seen: {}",
            crate::sys::joined(&disks, ", ")
        );
        assert!(msg.len() > MAX_MESSAGE);
        let tail = "; action: oldinit /sbin/init.old";
        let out = fit_keeping_tail(&msg, tail);
        assert_eq!(out.len(), MAX_MESSAGE);
        assert!(out.starts_with("FAILED at wait: no device matching LABEL=root appeared within 300 s; block devices seen: nvme0n1 (259:0)"), "{out}");
        assert!(out.ends_with(&format!(" ... {tail}")), "{out}");
        // Through the logger's record: nothing more is cut.
        let r = format_record(Level::Error, &out, true);
        assert!(r.len() <= MAX_RECORD);
        assert!(r.ends_with(format!(" ... {tail}\n").as_bytes()));
    }

    #[test]
    fn cuts_fall_on_char_boundaries() {
        for pad in 0..4 {
            let msg = format!("{}{}", "x".repeat(pad), "é€😀".repeat(400));
            let tail = "; action: ↻ é";
            let out = fit_keeping_tail(&msg, tail);
            assert!(
                out.len() <= MAX_MESSAGE && out.len() > MAX_MESSAGE - 4,
                "{}",
                out.len()
            );
            assert!(out.ends_with(&format!(" ... {tail}")));
            assert!(msg.starts_with(out.split(" ... ").next().unwrap_or("?")));
        }
    }

    /// A tail longer than half a record (a very long old-init path, say)
    /// keeps the start of the line and the end of the tail.
    #[test]
    fn a_huge_tail_keeps_both_ends() {
        let tail = format!("; action: oldinit /{}/init", "d".repeat(2000));
        let out = fit_keeping_tail("FAILED at exec: why", &tail);
        assert!(
            out.len() <= MAX_MESSAGE && out.len() > MAX_MESSAGE - 4,
            "{}",
            out.len()
        );
        assert!(
            out.starts_with("FAILED at exec: why; action: oldinit /ddd"),
            "{out}"
        );
        assert!(out.ends_with("ddd/init"), "{out}");
        assert_eq!(out.matches(CUT).count(), 1);
        // Empty pieces are no trouble either.
        assert_eq!(fit_keeping_tail("", ""), "");
        assert_eq!(fit_keeping_tail(&"y".repeat(5000), "").len(), MAX_MESSAGE);
    }

    /// A message formatted in pieces is cut once: what comes after the
    /// cut is not appended, even a piece small enough for the room left.
    #[test]
    fn a_cut_message_is_a_prefix() {
        let mut r = Record992::new(Level::Info, true);
        let long = "é".repeat(MAX_RECORD);
        // One byte of room is left after the last whole `é`.
        let _ = std::fmt::write(&mut r, format_args!("x{long}{}", "z"));
        let out = r.finish().to_vec();
        assert_eq!(out.len(), MAX_RECORD - 1);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(
            text.starts_with("<6>pivot-init: xéé") && text.ends_with("é\n"),
            "{text}"
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
