//! Boot counting as plain data: the state pivot-init keeps on the boot disk
//! (the volume it is for, the tries it has left, when it was last tried and
//! last blessed), its text form, the decision at the start of a boot and the
//! line `pivot-init status` prints.
//!
//! The file is text, one `key value` per line, between a version line and
//! an end line:
//!
//! ```text
//! pivot-init-state 1
//! uuid 6b657865-6300-4000-8000-0000000000a1
//! spec SERIAL=vol-0abc
//! tries 2
//! left 1
//! attempts 1
//! last-attempt 1700000000
//! last-bless 1699990000
//! end
//! ```
//!
//! `uuid`, `spec`, `left` and the two times may be missing (no `left`: blessed,
//! every try left). A file cut short (no end line), of another version,
//! with an unknown, repeated or malformed line, or longer than
//! [`MAX_BYTES`] is no state, and [`parse`] says why; it never panics.

use std::fmt::Write as _;

/// Where the state lives on the boot root (`pivot.state`).
pub const DEFAULT_PATH: &str = "/var/lib/pivot-init/state";
/// The first line: the format and its version.
pub const VERSION_LINE: &str = "pivot-init-state 1";
/// The last line: a file without it was cut short.
pub const END_LINE: &str = "end";
/// A state is a few hundred bytes; anything longer is not one.
pub const MAX_BYTES: usize = 4096;

/// The volume a count is for: its filesystem UUID (empty when it has none,
/// as squashfs) and the spec that found it (`pivot.root`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Volume {
    pub uuid: String,
    pub spec: String,
}

impl Volume {
    /// Whether `other` is this volume: by UUID when both have one, else by
    /// spec (never two unnamed volumes).
    pub fn is(&self, other: &Volume) -> bool {
        if !self.uuid.is_empty() && !other.uuid.is_empty() {
            return self.uuid.eq_ignore_ascii_case(&other.uuid);
        }
        !self.spec.is_empty() && self.spec == other.spec
    }

    /// `UUID=... (SERIAL=...)`, `UUID=...`, the spec alone, or `an unnamed volume`.
    pub fn describe(&self) -> String {
        match (self.uuid.is_empty(), self.spec.is_empty()) {
            (false, false) if self.spec != format!("UUID={}", self.uuid) => {
                format!("UUID={} ({})", self.uuid, self.spec)
            }
            (false, _) => format!("UUID={}", self.uuid),
            (true, false) => self.spec.clone(),
            (true, true) => "an unnamed volume".to_string(),
        }
    }
}

/// The state on the boot disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootCount {
    pub volume: Volume,
    /// `pivot.tries` when the last boot was counted (0: none was).
    pub tries: u32,
    /// Tries left; `None`: blessed, every try left.
    pub left: Option<u32>,
    /// Boots handed over to the volume since it was last blessed.
    pub attempts: u32,
    /// When the last boot was counted (seconds since 1970).
    pub last_attempt: Option<u64>,
    /// When the volume's system last said it was up (`pivot-init bless`).
    pub last_bless: Option<u64>,
}

/// What the start of a boot decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The volume has no tries left: it is not handed over. `boots`: how
    /// many it was given since it was last blessed.
    Refuse { boots: u32 },
    /// It is handed over with `left` tries (this one included); `next` is
    /// the state to write just before the hand-over.
    Go { left: u32, next: BootCount },
}

/// The decision for `volume` with `pivot.tries = tries` (more than 0), given
/// the state read from the boot disk (`None`: none, or none that could be
/// read) and the time now.
pub fn decide(state: Option<&BootCount>, volume: &Volume, tries: u32, now: u64) -> Decision {
    let same = state.filter(|s| s.volume.is(volume));
    // A lower limit than the one the count was taken with applies at once.
    let left = same.map_or(tries, |s| s.left.map_or(tries, |l| l.min(tries)));
    let attempts = same.map_or(0, |s| s.attempts);
    if left == 0 {
        let boots = if attempts > 0 { attempts } else { tries };
        return Decision::Refuse { boots };
    }
    let mut named = volume.clone();
    if named.uuid.is_empty() {
        // Found by spec alone: keep the UUID it was counted under, if any.
        named.uuid = same.map(|s| s.volume.uuid.clone()).unwrap_or_default();
    }
    Decision::Go {
        left,
        next: BootCount {
            volume: named,
            tries,
            left: Some(left - 1),
            attempts: attempts.saturating_add(1),
            last_attempt: Some(now),
            last_bless: same.and_then(|s| s.last_bless),
        },
    }
}

/// The state after `pivot-init bless` on the system of `running` (`None`:
/// on the boot disk itself, or a root whose UUID cannot be told: the volume
/// the state names), given the state on the boot disk (`None`: none).
/// `None` when there is nothing to bless: no state, and no volume known.
pub fn bless(state: Option<&BootCount>, running: Option<&Volume>, now: u64) -> Option<BootCount> {
    let volume = match (state, running) {
        (Some(s), Some(r)) if s.volume.is(r) => s.volume.clone(),
        (_, Some(r)) => r.clone(),
        (Some(s), None) => s.volume.clone(),
        (None, None) => return None,
    };
    let same = state.filter(|s| s.volume.is(&volume));
    Some(BootCount {
        volume,
        tries: same.map_or(0, |s| s.tries),
        left: None,
        attempts: 0,
        last_attempt: same.and_then(|s| s.last_attempt),
        last_bless: Some(now),
    })
}

/// Escapes a value for one line: `\` and control characters as `\xHH`.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if c == '\\' || c.is_control() {
            for b in c.to_string().bytes() {
                let _ = write!(out, "\\x{b:02x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Undoes [`escape`]; `None` for a broken escape.
fn unescape(v: &str) -> Option<String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'\\' {
            let hex = b.get(i + 1..i + 4)?;
            let (x, digits) = hex.split_first()?;
            if *x != b'x' || !digits.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()?);
            i += 4;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The text of a state file.
pub fn format(c: &BootCount) -> String {
    let mut out = format!("{VERSION_LINE}\n");
    if !c.volume.uuid.is_empty() {
        let _ = writeln!(out, "uuid {}", escape(&c.volume.uuid));
    }
    if !c.volume.spec.is_empty() {
        let _ = writeln!(out, "spec {}", escape(&c.volume.spec));
    }
    let _ = writeln!(out, "tries {}", c.tries);
    if let Some(l) = c.left {
        let _ = writeln!(out, "left {l}");
    }
    let _ = writeln!(out, "attempts {}", c.attempts);
    if let Some(t) = c.last_attempt {
        let _ = writeln!(out, "last-attempt {t}");
    }
    if let Some(t) = c.last_bless {
        let _ = writeln!(out, "last-bless {t}");
    }
    out.push_str(END_LINE);
    out.push('\n');
    out
}

/// Reads a state file's bytes; the reason when they are not a state.
pub fn parse(bytes: &[u8]) -> Result<BootCount, String> {
    if bytes.is_empty() {
        return Err("it is empty".into());
    }
    if bytes.len() > MAX_BYTES {
        return Err(format!(
            "it is {} bytes long, more than a state's {MAX_BYTES}",
            bytes.len()
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_string())?;
    let body = text
        .strip_suffix(&format!("\n{END_LINE}\n"))
        .ok_or_else(|| format!("it does not end with the line `{END_LINE}` (cut short?)"))?;
    let mut lines = body.split('\n');
    match lines.next() {
        Some(VERSION_LINE) => {}
        Some(first) => {
            return Err(format!(
                "its first line is `{}`, not `{VERSION_LINE}`",
                crate::sys::escaped(first)
            ));
        }
        None => return Err("it has no version line".into()),
    }
    let mut c = BootCount::default();
    let mut seen: Vec<&str> = Vec::new();
    let mut tries = None;
    let mut attempts = None;
    for (n, line) in lines.enumerate() {
        let at = n + 2;
        let (key, value) = line.split_once(' ').ok_or_else(|| {
            format!(
                "line {at} `{}` is not `key value`",
                crate::sys::escaped(line)
            )
        })?;
        if seen.contains(&key) {
            return Err(format!(
                "line {at}: `{}` is given twice",
                crate::sys::escaped(key)
            ));
        }
        seen.push(key);
        let number = || -> Result<u64, String> {
            value.parse::<u64>().map_err(|_| {
                format!(
                    "line {at}: `{}` is not a number",
                    crate::sys::escaped(value)
                )
            })
        };
        match key {
            "uuid" | "spec" => {
                let v = unescape(value)
                    .ok_or_else(|| format!("line {at}: a broken escape in `{value}`"))?;
                if key == "uuid" {
                    c.volume.uuid = v;
                } else {
                    c.volume.spec = v;
                }
            }
            // Each kind of number is read in one place, whichever key it is for.
            "tries" | "left" | "attempts" => {
                let n = u32::try_from(number()?)
                    .map_err(|_| format!("line {at}: {value} is too large"))?;
                let slot = match key {
                    "tries" => &mut tries,
                    "left" => &mut c.left,
                    _ => &mut attempts,
                };
                *slot = Some(n);
            }
            "last-attempt" | "last-bless" => {
                let n = Some(number()?);
                if key == "last-attempt" {
                    c.last_attempt = n;
                } else {
                    c.last_bless = n;
                }
            }
            _ => {
                return Err(format!(
                    "line {at}: unknown key `{}`",
                    crate::sys::escaped(key)
                ));
            }
        }
    }
    c.tries = tries.ok_or("it has no `tries` line")?;
    c.attempts = attempts.ok_or("it has no `attempts` line")?;
    Ok(c)
}

/// `2023-11-14 22:13:20 UTC` for seconds since 1970.
pub fn utc(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The Gregorian date `days` after 1970-01-01: counted in 400-year eras
/// (146,097 days each) of years that start on 1 March, so that the leap
/// day is the last day of a year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Days since 0000-03-01.
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    // Years into the era: a leap day every 4 years, none every 100, one every 400.
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months from March, in 153-day runs of five (31 30 31 30 31).
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era.saturating_mul(400) + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

fn when(t: Option<u64>) -> String {
    t.map_or_else(|| "never".to_string(), utc)
}

/// The line `pivot-init status` prints for a state.
pub fn describe(c: &BootCount) -> String {
    let plural = |n: u32, one: &str, many: &str| {
        if n == 1 {
            format!("{n} {one}")
        } else {
            format!("{n} {many}")
        }
    };
    let count = match c.left {
        Some(l) => format!(
            "{l} of {} left, {} since the last bless",
            plural(c.tries, "try", "tries"),
            plural(c.attempts, "boot", "boots")
        ),
        None if c.tries > 0 => format!("blessed, all {} left", plural(c.tries, "try", "tries")),
        None => "blessed".to_string(),
    };
    format!(
        "{}: {count}; last attempt {}; last bless {}",
        c.volume.describe(),
        when(c.last_attempt),
        when(c.last_bless)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(uuid: &str, spec: &str) -> Volume {
        Volume {
            uuid: uuid.into(),
            spec: spec.into(),
        }
    }

    fn counted() -> BootCount {
        BootCount {
            volume: vol("6b657865-6300-4000-8000-0000000000a1", "SERIAL=vol-0abc"),
            tries: 2,
            left: Some(1),
            attempts: 1,
            last_attempt: Some(1_700_000_000),
            last_bless: Some(1_699_990_000),
        }
    }

    #[test]
    fn format_then_parse_is_the_same_state() {
        let c = counted();
        let text = format(&c);
        assert_eq!(
            text,
            "pivot-init-state 1\nuuid 6b657865-6300-4000-8000-0000000000a1\nspec SERIAL=vol-0abc\n\
             tries 2\nleft 1\nattempts 1\nlast-attempt 1700000000\nlast-bless 1699990000\nend\n"
        );
        assert_eq!(parse(text.as_bytes()), Ok(c));
        // The optional lines may be missing.
        let bare = BootCount {
            volume: vol("", "LABEL=my data\\x"),
            ..BootCount::default()
        };
        let text = format(&bare);
        assert_eq!(
            text,
            "pivot-init-state 1\nspec LABEL=my data\\x5cx\ntries 0\nattempts 0\nend\n"
        );
        assert_eq!(parse(text.as_bytes()), Ok(bare));
        // A value with a newline stays on its line.
        let odd = BootCount {
            volume: vol("", "LABEL=a\nleft 9\u{7f}é"),
            ..BootCount::default()
        };
        let text = format(&odd);
        assert_eq!(text.lines().count(), 5, "{text}");
        assert_eq!(parse(text.as_bytes()), Ok(odd));
    }

    #[test]
    fn torn_garbage_or_empty_is_no_state_with_the_reason() {
        let good = format(&counted());
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (Vec::new(), "it is empty"),
            (
                good.as_bytes()[..good.len() - 4].to_vec(),
                "it does not end with the line `end` (cut short?)",
            ),
            (
                good.replace("end\n", "end").into_bytes(),
                "it does not end with the line `end` (cut short?)",
            ),
            (
                good.replace("state 1", "state 2").into_bytes(),
                "its first line is `pivot-init-state 2`, not `pivot-init-state 1`",
            ),
            (
                good.replace("left 1", "left one").into_bytes(),
                "line 5: `one` is not a number",
            ),
            (
                good.replace("left 1", "left 99999999999").into_bytes(),
                "line 5: 99999999999 is too large",
            ),
            (
                good.replace("left 1", "colour blue").into_bytes(),
                "line 5: unknown key `colour`",
            ),
            (
                good.replace("left 1", "tries 3").into_bytes(),
                "line 5: `tries` is given twice",
            ),
            (
                good.replace("left 1\n", "")
                    .replace("tries 2\n", "")
                    .into_bytes(),
                "it has no `tries` line",
            ),
            (
                good.replace("left 1", "left").into_bytes(),
                "line 5 `left` is not `key value`",
            ),
            (
                good.replace("SERIAL", "SER\\xZZ").into_bytes(),
                "line 3: a broken escape in `SER\\xZZ=vol-0abc`",
            ),
            (b"\xff\xfe\n".to_vec(), "it is not UTF-8 text"),
            (
                vec![b'a'; MAX_BYTES + 1],
                "it is 4097 bytes long, more than a state's 4096",
            ),
            (
                b"\nend\n".to_vec(),
                "its first line is ``, not `pivot-init-state 1`",
            ),
        ];
        for (bytes, why) in cases {
            assert_eq!(
                parse(&bytes),
                Err(why.to_string()),
                "{}",
                String::from_utf8_lossy(&bytes)
            );
        }
        // Every prefix of a good file is no state (a write cut anywhere).
        for n in 0..good.len() {
            assert!(parse(&good.as_bytes()[..n]).is_err(), "{n}");
        }
    }

    #[test]
    fn parse_never_panics_on_mutations() {
        let good = format(&counted()).into_bytes();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut b = good.clone();
            let at = (seed % b.len() as u64) as usize;
            match seed >> 60 {
                0..=5 => b[at] = (seed >> 32) as u8,
                6..=9 => {
                    b.insert(at, (seed >> 24) as u8);
                }
                _ => {
                    b.remove(at);
                }
            }
            let _ = parse(&b);
        }
    }

    #[test]
    fn tries_count_down_then_refuse() {
        let v = vol("aa", "SERIAL=x");
        let Decision::Go { left, next } = decide(None, &v, 2, 10) else {
            panic!("no state: go");
        };
        assert_eq!((left, next.left, next.attempts), (2, Some(1), 1));
        assert_eq!((next.tries, next.last_attempt), (2, Some(10)));
        let Decision::Go { left, next } = decide(Some(&next), &v, 2, 20) else {
            panic!("one left: go");
        };
        assert_eq!((left, next.left, next.attempts), (1, Some(0), 2));
        assert_eq!(
            decide(Some(&next), &v, 2, 30),
            Decision::Refuse { boots: 2 }
        );
        // Another volume starts with all its tries.
        let other = vol("bb", "SERIAL=x");
        assert!(matches!(
            decide(Some(&next), &other, 2, 30),
            Decision::Go { left: 2, .. }
        ));
        // A lower limit applies at once; a blessed state has every try.
        let mut s = next.clone();
        s.left = Some(5);
        assert!(matches!(
            decide(Some(&s), &v, 3, 0),
            Decision::Go { left: 3, .. }
        ));
        s.left = None;
        assert!(matches!(
            decide(Some(&s), &v, 4, 0),
            Decision::Go { left: 4, .. }
        ));
    }

    #[test]
    fn volumes_are_told_apart_by_uuid_then_spec() {
        assert!(vol("AB", "x").is(&vol("ab", "y")));
        assert!(!vol("ab", "x").is(&vol("cd", "x")));
        assert!(vol("", "SERIAL=s").is(&vol("ab", "SERIAL=s")));
        assert!(!vol("", "").is(&vol("", "")));
        // Found by spec without a UUID now: the UUID it had is kept.
        let s = BootCount {
            volume: vol("ab", "SERIAL=s"),
            tries: 2,
            left: Some(1),
            attempts: 1,
            ..BootCount::default()
        };
        let Decision::Go { next, .. } = decide(Some(&s), &vol("", "SERIAL=s"), 2, 0) else {
            panic!("go");
        };
        assert_eq!(next.volume, vol("ab", "SERIAL=s"));
        assert_eq!(vol("ab", "UUID=ab").describe(), "UUID=ab");
        assert_eq!(vol("ab", "SERIAL=s").describe(), "UUID=ab (SERIAL=s)");
        assert_eq!(vol("", "").describe(), "an unnamed volume");
    }

    #[test]
    fn bless_gives_every_try_back() {
        let mut spent = counted();
        spent.left = Some(0);
        spent.attempts = 2;
        let running = spent.volume.clone();
        let b = bless(Some(&spent), Some(&running), 99).unwrap();
        assert_eq!(
            b,
            BootCount {
                volume: running.clone(),
                tries: 2,
                left: None,
                attempts: 0,
                last_attempt: Some(1_700_000_000),
                last_bless: Some(99),
            }
        );
        // On the boot disk (no running volume): the one the state names.
        assert_eq!(bless(Some(&spent), None, 99), Some(b.clone()));
        // Another volume runs: the count is for it now.
        let other = vol("cc", "");
        let b2 = bless(Some(&spent), Some(&other), 5).unwrap();
        assert_eq!((b2.volume, b2.tries, b2.last_attempt), (other, 0, None));
        assert_eq!(bless(None, None, 5), None);
        assert!(matches!(
            decide(Some(&b), &running, 2, 100),
            Decision::Go { left: 2, .. }
        ));
    }

    #[test]
    fn dates_and_the_status_line() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(4_107_542_399), "2100-02-28 23:59:59 UTC");
        assert_eq!(utc(4_107_542_400), "2100-03-01 00:00:00 UTC");
        assert!(utc(u64::MAX).ends_with(" UTC"));
        assert_eq!(
            describe(&counted()),
            "UUID=6b657865-6300-4000-8000-0000000000a1 (SERIAL=vol-0abc): 1 of 2 tries left, \
             1 boot since the last bless; last attempt 2023-11-14 22:13:20 UTC; \
             last bless 2023-11-14 19:26:40 UTC"
        );
        let b = bless(Some(&counted()), None, 0).unwrap();
        assert!(
            describe(&b).starts_with("UUID=6b657865-6300-4000-8000-0000000000a1 (SERIAL=vol-0abc): blessed, all 2 tries left; last attempt 2023"),
            "{}",
            describe(&b)
        );
        let fresh = BootCount {
            volume: vol("", "SERIAL=s"),
            ..BootCount::default()
        };
        assert_eq!(
            describe(&fresh),
            "SERIAL=s: blessed; last attempt never; last bless never"
        );
    }
}
