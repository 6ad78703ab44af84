//! Directory listing formats: the `ls -l` lines of LIST and STAT, the bare
//! names of NLST, and the timestamps of MDTM.
//!
//! Listings are built here from plain facts about each entry, never inside
//! a storage backend, so every backend lists the same way.

use std::fmt::Write as _;

/// What kind of entry a listing line describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link (shown, never followed out of the root).
    Symlink,
    /// Anything else (socket, device, fifo).
    Other,
}

/// The facts a listing line needs about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFacts {
    /// The entry's name (last path component).
    pub name: String,
    /// File, directory, link or other.
    pub kind: EntryKind,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch (UTC).
    pub modified: i64,
    /// Permission bits (0o7777 part of st_mode).
    pub mode: u32,
    /// Hard link count.
    pub nlink: u64,
    /// An identifier stable for the entry's life, for the MLSx `unique`
    /// fact.
    pub unique: Option<UniqueId>,
}

/// A file's identity on its host: device and inode, shown as the MLSx
/// `unique` fact (`801g1f`). Kept as numbers and formatted only when a
/// listing shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UniqueId {
    /// The device number.
    pub device: u64,
    /// The inode number.
    pub inode: u64,
}

impl std::fmt::Display for UniqueId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:x}g{:x}", self.device, self.inode)
    }
}

const SIX_MONTHS: i64 = 182 * 24 * 3600;
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// A calendar date and time in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    /// Year, e.g. 2026.
    pub year: i64,
    /// Month 1-12.
    pub month: u32,
    /// Day of month 1-31.
    pub day: u32,
    /// Hour 0-23.
    pub hour: u32,
    /// Minute 0-59.
    pub minute: u32,
    /// Second 0-59.
    pub second: u32,
}

impl CivilTime {
    /// Converts seconds since the Unix epoch to a UTC calendar time
    /// (the days-to-civil algorithm for the proleptic Gregorian calendar).
    pub fn from_unix(secs: i64) -> CivilTime {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        CivilTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `YYYYMMDDHHMMSS` (optionally `.sss`, ignored) as UTC seconds
/// since the epoch; `None` unless it is a real date and time.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let main = text.split_once('.').map_or(text, |(m, frac)| {
        if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
            ""
        } else {
            m
        }
    });
    if main.len() != 14 || !main.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| main[r].parse::<u32>().ok();
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second) = (num(8..10)?, num(10..12)?, num(12..14)?);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    Some(days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second.min(59)))
}

/// The MLSx facts this server offers, in FEAT order.
pub const MLSX_FACTS: [&str; 6] = ["type", "size", "modify", "perm", "unique", "UNIX.mode"];

/// One MLSx line (RFC 3659 7.2): `fact=value;...; name`. `facts` says
/// which facts to show (names from [`MLSX_FACTS`]); `kind_override` gives
/// `cdir` for the listed directory itself; `perm` is the perm fact.
pub fn mlsx_line(entry: &EntryFacts, facts: &[&str], kind_override: Option<&str>, perm: &str, name: &str) -> String {
    let mut out = String::with_capacity(96);
    write_mlsx_line(&mut out, entry, facts, kind_override, perm, name);
    out
}

/// [`mlsx_line`], appended to `out` (a listing of thousands of entries is
/// written into one buffer).
pub fn write_mlsx_line(
    out: &mut String,
    entry: &EntryFacts,
    facts: &[&str],
    kind_override: Option<&str>,
    perm: &str,
    name: &str,
) {
    // Writing to a String cannot fail.
    for fact in facts {
        let _ = match *fact {
            "type" => {
                let kind = kind_override.unwrap_or(match entry.kind {
                    EntryKind::File => "file",
                    EntryKind::Directory => "dir",
                    EntryKind::Symlink => "OS.unix=symlink",
                    EntryKind::Other => "OS.unix=special",
                });
                write!(out, "type={kind};")
            }
            "size" if entry.kind == EntryKind::File => write!(out, "size={};", entry.size),
            "modify" => {
                let t = CivilTime::from_unix(entry.modified);
                write!(
                    out,
                    "modify={:04}{:02}{:02}{:02}{:02}{:02};",
                    t.year, t.month, t.day, t.hour, t.minute, t.second
                )
            }
            "perm" => write!(out, "perm={perm};"),
            "unique" => match &entry.unique {
                Some(u) => write!(out, "unique={u};"),
                None => Ok(()),
            },
            "UNIX.mode" => write!(out, "UNIX.mode=0{:o};", entry.mode),
            _ => Ok(()),
        };
    }
    out.push(' ');
    out.push_str(name);
}

/// The `YYYYMMDDHHMMSS` timestamp of MDTM (RFC 3659), in UTC.
pub fn mdtm_timestamp(secs: i64) -> String {
    let t = CivilTime::from_unix(secs);
    format!("{:04}{:02}{:02}{:02}{:02}{:02}", t.year, t.month, t.day, t.hour, t.minute, t.second)
}

fn push_mode_string(out: &mut String, kind: EntryKind, mode: u32) {
    out.push(match kind {
        EntryKind::Directory => 'd',
        EntryKind::Symlink => 'l',
        EntryKind::File => '-',
        EntryKind::Other => '?',
    });
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    for (bit, ch) in bits {
        out.push(if mode & bit != 0 { ch } else { '-' });
    }
}

/// One `ls -l` style line, as vsftpd and the seed's listing show it:
/// `-rw-r--r--    1 ftp      ftp          1234 Nov 24 15:16 name`.
/// Entries older than six months (or in the future) show the year instead
/// of the time. Owner and group are always shown as `ftp`, so a listing
/// never reveals the server's local accounts.
pub fn ls_line(entry: &EntryFacts, now: i64) -> String {
    let mut out = String::with_capacity(64 + entry.name.len());
    write_ls_line(&mut out, entry, now);
    out
}

/// [`ls_line`], appended to `out` without allocating (a listing of
/// thousands of entries is written into one buffer).
pub fn write_ls_line(out: &mut String, entry: &EntryFacts, now: i64) {
    let t = CivilTime::from_unix(entry.modified);
    push_mode_string(out, entry.kind, entry.mode);
    // The numbers by hand rather than through `write!`: its padding
    // machinery was about a fifth of the server's user-space time in a
    // 10,000-entry LIST (perf).
    out.push(' ');
    push_right_aligned(out, entry.nlink, 4);
    out.push_str(" ftp      ftp      ");
    push_right_aligned(out, entry.size, 12);
    out.push(' ');
    out.push_str(MONTHS[(t.month - 1) as usize]);
    out.push(' ');
    push_right_aligned(out, u64::from(t.day), 2);
    out.push(' ');
    if entry.modified > now + 3600 || now - entry.modified > SIX_MONTHS {
        match u64::try_from(t.year) {
            Ok(year) => {
                out.push(' ');
                push_right_aligned(out, year, 4);
            }
            // Writing to a String cannot fail.
            Err(_) => drop(write!(out, " {:>4}", t.year)),
        }
    } else {
        push_two_digits(out, t.hour);
        out.push(':');
        push_two_digits(out, t.minute);
    }
    out.push(' ');
    out.push_str(&entry.name);
}

/// Appends `value` in decimal, right-aligned in `width` columns (wider
/// when it needs more).
fn push_right_aligned(out: &mut String, value: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = value;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for _ in digits.len() - start..width {
        out.push(' ');
    }
    out.extend(digits[start..].iter().map(|&d| char::from(d)));
}

/// Appends 0-99 as two digits.
fn push_two_digits(out: &mut String, value: u32) {
    out.push(char::from(b'0' + (value / 10 % 10) as u8));
    out.push(char::from(b'0' + (value % 10) as u8));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_time() {
        assert_eq!(CivilTime::from_unix(0), CivilTime { year: 1970, month: 1, day: 1, hour: 0, minute: 0, second: 0 });
        // 2000-02-29 12:34:56 UTC
        let t = CivilTime::from_unix(951_827_696);
        assert_eq!((t.year, t.month, t.day, t.hour, t.minute, t.second), (2000, 2, 29, 12, 34, 56));
        assert_eq!(mdtm_timestamp(1_795_533_376), "20261124151616");
        assert_eq!(parse_timestamp("20261124151616"), Some(1_795_533_376));
        assert_eq!(parse_timestamp("20261124151616.123"), Some(1_795_533_376));
        assert_eq!(parse_timestamp("19700101000000"), Some(0));
        assert_eq!(parse_timestamp("20000229123456"), Some(951_827_696));
        for bad in
            ["20010229000000", "20261324151616", "2026112415161", "20261124256161", "2026112415161x", "20261124151616."]
        {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn mlsx_lines() {
        let e = EntryFacts {
            name: "a b.txt".into(),
            kind: EntryKind::File,
            size: 5,
            modified: 1_795_533_376,
            mode: 0o644,
            nlink: 1,
            unique: Some(UniqueId { device: 0x801, inode: 0x1f }),
        };
        assert_eq!(
            mlsx_line(&e, &MLSX_FACTS, None, "adfrw", "a b.txt"),
            "type=file;size=5;modify=20261124151616;perm=adfrw;unique=801g1f;UNIX.mode=0644; a b.txt"
        );
        assert_eq!(mlsx_line(&e, &["size"], None, "r", "/x/a b.txt"), "size=5; /x/a b.txt");
    }

    #[test]
    fn ls_recent_and_old() {
        let now = 1_795_533_376; // 2026-11-24 15:16:16
        let e = EntryFacts {
            name: "测试 文件.txt".into(),
            kind: EntryKind::File,
            size: 3_221_225_472,
            modified: now - 60,
            mode: 0o644,
            nlink: 1,
            unique: None,
        };
        assert_eq!(ls_line(&e, now), "-rw-r--r--    1 ftp      ftp        3221225472 Nov 24 15:15 测试 文件.txt");
        let old = EntryFacts {
            kind: EntryKind::Directory,
            mode: 0o755,
            nlink: 2,
            size: 4096,
            modified: now - 400 * 86_400,
            name: "d".into(),
            unique: None,
        };
        assert_eq!(ls_line(&old, now), "drwxr-xr-x    2 ftp      ftp              4096 Oct 20  2025 d");
        // Widths overflow rather than cut; zero is a digit; a year before
        // 1 AD still prints.
        let odd = EntryFacts { nlink: 123_456, size: 0, modified: now - 60 - 9 * 60, ..e.clone() };
        assert_eq!(ls_line(&odd, now), "-rw-r--r-- 123456 ftp      ftp                 0 Nov 24 15:06 测试 文件.txt");
        let huge = EntryFacts { size: u64::MAX, modified: 946_684_800, ..e.clone() };
        assert_eq!(
            ls_line(&huge, now),
            "-rw-r--r--    1 ftp      ftp      18446744073709551615 Jan  1  2000 测试 文件.txt"
        );
        let ancient = EntryFacts { modified: -62_200_000_000, ..e };
        let year = CivilTime::from_unix(ancient.modified).year;
        assert!(year < 0);
        assert!(ls_line(&ancient, now).ends_with(&format!(" {year:>4} 测试 文件.txt")), "{}", ls_line(&ancient, now));
    }
}
