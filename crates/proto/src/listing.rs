//! Directory listing formats: the `ls -l` lines of LIST and STAT, the bare
//! names of NLST, and the timestamps of MDTM.
//!
//! Listings are built here from plain facts about each entry, never inside
//! a storage backend, so every backend lists the same way.

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

/// The `YYYYMMDDHHMMSS` timestamp of MDTM (RFC 3659), in UTC.
pub fn mdtm_timestamp(secs: i64) -> String {
    let t = CivilTime::from_unix(secs);
    format!("{:04}{:02}{:02}{:02}{:02}{:02}", t.year, t.month, t.day, t.hour, t.minute, t.second)
}

fn mode_string(kind: EntryKind, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(match kind {
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
        s.push(if mode & bit != 0 { ch } else { '-' });
    }
    s
}

/// One `ls -l` style line, as vsftpd and the seed's listing show it:
/// `-rw-r--r--    1 ftp      ftp          1234 Nov 24 15:16 name`.
/// Entries older than six months (or in the future) show the year instead
/// of the time. Owner and group are always shown as `ftp`, so a listing
/// never reveals the server's local accounts.
pub fn ls_line(entry: &EntryFacts, now: i64) -> String {
    let t = CivilTime::from_unix(entry.modified);
    let when = if entry.modified > now + 3600 || now - entry.modified > SIX_MONTHS {
        format!("{} {:>2}  {:>4}", MONTHS[(t.month - 1) as usize], t.day, t.year)
    } else {
        format!("{} {:>2} {:02}:{:02}", MONTHS[(t.month - 1) as usize], t.day, t.hour, t.minute)
    };
    format!(
        "{} {:>4} ftp      ftp      {:>12} {} {}",
        mode_string(entry.kind, entry.mode),
        entry.nlink,
        entry.size,
        when,
        entry.name
    )
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
        };
        assert_eq!(ls_line(&e, now), "-rw-r--r--    1 ftp      ftp        3221225472 Nov 24 15:15 测试 文件.txt");
        let old = EntryFacts {
            kind: EntryKind::Directory,
            mode: 0o755,
            nlink: 2,
            size: 4096,
            modified: now - 400 * 86_400,
            name: "d".into(),
        };
        assert_eq!(ls_line(&old, now), "drwxr-xr-x    2 ftp      ftp              4096 Oct 20  2025 d");
    }
}
