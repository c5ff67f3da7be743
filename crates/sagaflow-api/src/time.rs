//! Timestamps on the wire: RFC 3339 in UTC with milliseconds, from milliseconds since the epoch.

/// Formats milliseconds since the Unix epoch as `2026-11-24T11:25:22.123Z`.
pub fn rfc3339(ms: u64) -> String {
    match rfc3339_bytes(ms) {
        Some(bytes) => bytes.iter().map(|&b| char::from(b)).collect(),
        None => {
            let (year, month, day, rem, millis) = parts(ms);
            // Past RFC 3339's four-digit years: no such clock, but never a wrong date.
            format!(
                "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
                rem / 3600,
                (rem % 3600) / 60,
                rem % 60
            )
        }
    }
}

/// `rfc3339(ms)` as ASCII bytes, for a year of four digits (`None` past them), without an
/// allocation. Written digit by digit: a view carries several timestamps per step, and
/// `format!` with padded fields cost more than the rest of building the view.
pub fn rfc3339_bytes(ms: u64) -> Option<[u8; 24]> {
    let (year, month, day, rem, millis) = parts(ms);
    if !(0..=9999).contains(&year) {
        return None;
    }
    let mut text = *b"0000-00-00T00:00:00.000Z";
    put_digits(&mut text[0..4], year as u32);
    put_digits(&mut text[5..7], month);
    put_digits(&mut text[8..10], day);
    put_digits(&mut text[11..13], rem / 3600);
    put_digits(&mut text[14..16], (rem % 3600) / 60);
    put_digits(&mut text[17..19], rem % 60);
    put_digits(&mut text[20..23], millis);
    Some(text)
}

/// The year, month, day, seconds into the day and milliseconds of `ms`.
fn parts(ms: u64) -> (i64, u32, u32, u32, u32) {
    let secs = ms / 1000;
    let millis = (ms % 1000) as u32;
    let days = (secs / 86_400) as i64;
    let rem = (secs % 86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    (year, month, day, rem, millis)
}

/// `value`'s last `into.len()` decimal digits, zero-padded, into `into`.
fn put_digits(into: &mut [u8], mut value: u32) {
    for digit in into.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::{rfc3339, rfc3339_bytes};

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_795_519_522_000), "2026-11-24T11:25:22.000Z");
        assert_eq!(rfc3339(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(253_402_300_800_000), "10000-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_bytes(253_402_300_800_000), None);
        assert_eq!(
            rfc3339_bytes(951_782_400_123).as_ref().map(|b| &b[..]),
            Some(&b"2000-02-29T00:00:00.123Z"[..])
        );
    }
}
