//! [`parse_retry_after`]: the `Retry-After` header (RFC 9110 §10.2.3) as a delay.

use std::time::{Duration, SystemTime};

/// The delay a `Retry-After` header value asks for, or `None` when it is neither form.
///
/// - delay-seconds (`"120"`): that many seconds; too many digits saturate rather than fail.
/// - an HTTP-date in the IMF-fixdate form every current server sends
///   (`"Sun, 06 Nov 1994 08:49:37 GMT"`): the time from `now` until then, zero when it has
///   passed. The obsolete RFC 850 and asctime forms are not read.
///
/// `now` is an argument, not read from the clock, so the result is a pure function of it;
/// pass the time the answer arrived (`SystemTime::now()` at the call site).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use sagaflow::retry::parse_retry_after;
///
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_767); // 08:49:27 GMT
/// assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
/// assert_eq!(
///     parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
///     Some(Duration::from_secs(10))
/// );
/// assert_eq!(parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let seconds = value.bytes().fold(0u64, |seconds, digit| {
            seconds
                .saturating_mul(10)
                .saturating_add(u64::from(digit - b'0'))
        });
        return Some(Duration::from_secs(seconds));
    }
    let date_seconds = imf_fixdate_unix_seconds(value)?;
    let Ok(date_seconds) = u64::try_from(date_seconds) else {
        return Some(Duration::ZERO); // before 1970: long passed
    };
    let date = SystemTime::UNIX_EPOCH + Duration::from_secs(date_seconds);
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Seconds since the Unix epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), checked
/// field by field. The weekday must be a weekday's name; whether it is the right one for the
/// date is not checked (the date is what counts).
fn imf_fixdate_unix_seconds(value: &str) -> Option<i64> {
    let bytes = value.as_bytes();
    if bytes.len() != 29 || !value.is_ascii() {
        return None;
    }
    let literal = |at: usize, expected: &str| value.get(at..at + expected.len()) == Some(expected);
    let separators = literal(3, ", ")
        && literal(7, " ")
        && literal(11, " ")
        && literal(16, " ")
        && literal(19, ":")
        && literal(22, ":")
        && literal(25, " GMT");
    if !separators || !WEEKDAYS.contains(&&value[0..3]) {
        return None;
    }
    let month = MONTHS.iter().position(|m| *m == &value[8..11])? as u32 + 1;
    let day = digits(&value[5..7])?;
    let year = digits(&value[12..16])?;
    let (hour, minute, second) = (
        digits(&value[17..19])?,
        digits(&value[20..22])?,
        digits(&value[23..25])?,
    );
    // 60 is a leap second.
    if day == 0 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    Some(days * 86_400 + i64::from(hour * 3600 + minute * 60 + second))
}

/// A fixed-width run of ASCII digits as a number.
fn digits(text: &str) -> Option<u32> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`). `month` is 1..=12, `day` 1..=31.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unix_seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix_seconds)
    }

    #[test]
    fn delay_seconds_are_read_and_saturate() {
        let now = at(0);
        let check = |value: &str, expected: Option<u64>| {
            assert_eq!(
                parse_retry_after(value, now),
                expected.map(Duration::from_secs),
                "{value:?}"
            );
        };
        check("0", Some(0));
        check(" 7 ", Some(7));
        check("120", Some(120));
        check("99999999999999999999999", Some(u64::MAX));
        check("", None);
        check("-1", None);
        check("1.5", None);
        check("+3", None);
        check("3s", None);
    }

    #[test]
    fn imf_fixdates_become_the_time_until_then() {
        // RFC 9110's example date is 784111777 seconds after the epoch.
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(imf_fixdate_unix_seconds(date), Some(784_111_777));
        assert_eq!(
            parse_retry_after(date, at(784_111_777 - 90)),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after(date, at(784_111_777)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after(date, at(2_000_000_000)),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
    }

    #[test]
    fn calendar_arithmetic_matches_known_dates() {
        let check = |date: &str, unix_seconds: i64| {
            assert_eq!(imf_fixdate_unix_seconds(date), Some(unix_seconds), "{date}");
        };
        check("Thu, 01 Jan 1970 00:00:00 GMT", 0);
        check("Tue, 29 Feb 2000 12:00:00 GMT", 951_825_600);
        check("Sat, 31 Dec 2022 23:59:59 GMT", 1_672_531_199);
        check("Sun, 01 Jan 2023 00:00:00 GMT", 1_672_531_200);
        check("Wed, 18 May 2033 03:33:20 GMT", 2_000_000_000);
        check("Wed, 31 Dec 1969 23:59:59 GMT", -1);
        assert_eq!(
            parse_retry_after("Wed, 31 Dec 1969 23:59:59 GMT", at(0)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn malformed_dates_are_refused() {
        for date in [
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 08:49:37 +0000",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 29 Feb 1900 08:49:37 GMT",
            "Sun, 00 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:49:37 GMT",
            "Sun, 06 Nov 1994 08:60:37 GMT",
            "Sun, 06 Nov 1994 08:49:61 GMT",
            "Sun, +6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMTé",
            "Sun,é06 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(imf_fixdate_unix_seconds(date), None, "{date}");
        }
    }
}
