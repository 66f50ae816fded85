//! The one grammar for sizes and durations in flowlib, shared by the attribute macros
//! (`#[resources(memory = "4GiB")]`, `#[timeout("500ms")]`, `#[retry(delay = "1s")]`) and
//! the runtime's options (`--max-memory 8GiB`, `FLOWLIB_CACHE_MAX`, `gc --grace 24h`), so a
//! spelling accepted in one place is accepted everywhere.
//!
//! ```
//! use std::time::Duration;
//!
//! assert_eq!(flowlib_units::parse_size("4GiB")?, 4 << 30);
//! assert_eq!(flowlib_units::parse_duration("500ms")?, Duration::from_millis(500));
//! assert!(flowlib_units::parse_size("4GB").is_err()); // 10^9 or 2^30? Say GiB.
//! # Ok::<(), flowlib_units::UnitError>(())
//! ```
//!
//! # Grammar
//!
//! A quantity is a decimal number, optional white space, then a unit; white space around
//! the whole is ignored. The number is ASCII digits with at most one `.` (`4`, `1.5`, `.5`,
//! `2.`); there is no sign and no exponent. Units are case-sensitive.
//!
//! | quantity | units | without a unit |
//! | --- | --- | --- |
//! | size | `B`, `KiB`, `MiB`, `GiB`, `TiB` (binary: `KiB` is 1024 bytes) | bytes (`1024`) |
//! | duration | `ms`, `s` (or `sec`), `m` (or `min`), `h`, `d` | an error |
//!
//! Decimal size units (`KB`, `GB`, ...) are rejected with a hint, since `4GB` could mean
//! 10^9 or 2^30 bytes. Fractions are rounded to the nearest byte or nanosecond. A size must
//! fit in a `u64` of bytes and a duration in a `u64` of nanoseconds (about 584 years), so
//! code adding one to an `Instant` or counting it in milliseconds cannot overflow.
#![warn(missing_docs)]

use std::fmt;
use std::time::Duration;

const SIZE_UNITS: &[(&str, u128)] = &[
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

const MS: u128 = 1_000_000;
const SEC: u128 = 1_000 * MS;
const DURATION_UNITS: &[(&str, u128)] = &[
    ("ms", MS),
    ("s", SEC),
    ("sec", SEC),
    ("m", 60 * SEC),
    ("min", 60 * SEC),
    ("h", 3_600 * SEC),
    ("d", 86_400 * SEC),
];

/// Fraction digits beyond these are below a nanosecond for every unit and are ignored.
const FRACTION_DIGITS: usize = 19;

/// A size or duration that does not follow the grammar, or is too large.
///
/// Its `Display` is one line naming the input and the accepted units:
///
/// ```
/// let err = flowlib_units::parse_size("4GB").unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "invalid size unit `GB` in `4GB`: use binary units B, KiB, MiB, GiB or TiB (did you mean \"4GiB\"?)"
/// );
/// assert_eq!(err.input(), "4GB");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitError {
    input: String,
    quantity: Quantity,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quantity {
    Size,
    Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// No number where one was expected.
    NoNumber,
    /// A number alone where a unit is required (durations).
    NoUnit {
        number: String,
    },
    UnknownUnit {
        unit: String,
        number: String,
        hint: Option<&'static str>,
    },
    TooLarge,
}

impl UnitError {
    /// The text that failed to parse, as given.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let input = &self.input;
        match (&self.kind, self.quantity) {
            (Kind::NoNumber, Quantity::Size) => write!(
                f,
                "invalid size `{input}`: expected a number and a unit (B, KiB, MiB, GiB or TiB), like \"4GiB\""
            ),
            (Kind::NoNumber, Quantity::Duration) => write!(
                f,
                "invalid duration `{input}`: expected a number and a unit (ms, s, m, h or d), like \"30s\""
            ),
            (Kind::NoUnit { number }, _) => write!(
                f,
                "duration `{input}` has no unit: write \"{number}s\" (units: ms, s, m, h, d)"
            ),
            (Kind::UnknownUnit { unit, number, hint }, quantity) => {
                match quantity {
                    Quantity::Size => write!(
                        f,
                        "invalid size unit `{unit}` in `{input}`: use binary units B, KiB, MiB, GiB or TiB"
                    )?,
                    Quantity::Duration => write!(
                        f,
                        "invalid duration unit `{unit}` in `{input}`: use ms, s, m, h or d"
                    )?,
                }
                match hint {
                    Some(u) => write!(f, " (did you mean \"{number}{u}\"?)"),
                    None => Ok(()),
                }
            }
            (Kind::TooLarge, Quantity::Size) => write!(
                f,
                "size `{input}` is too large: sizes stop short of 16 EiB (units: B, KiB, MiB, GiB or TiB)"
            ),
            (Kind::TooLarge, Quantity::Duration) => write!(
                f,
                "duration `{input}` is too large: durations stop short of 2^64 nanoseconds, about 584 years (units: ms, s, m, h or d)"
            ),
        }
    }
}

impl std::error::Error for UnitError {}

/// Parse a size in bytes: `4GiB`, `512MiB`, `1.5GiB`, `100B`, or a plain `1024` (bytes).
///
/// ```
/// use flowlib_units::parse_size;
///
/// assert_eq!(parse_size("512MiB")?, 512 << 20);
/// assert_eq!(parse_size("1.5 GiB")?, 3 << 29);
/// assert_eq!(parse_size("1024")?, 1024);
/// assert!(parse_size("4gib").is_err()); // units are case-sensitive
/// # Ok::<(), flowlib_units::UnitError>(())
/// ```
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let q = Parsed::new(text, Quantity::Size)?;
    let mult = match q.unit {
        "" => 1,
        unit => q.multiplier(SIZE_UNITS, size_hint(unit))?,
    };
    let bytes = q.scaled(mult)?;
    Ok(bytes)
}

/// Parse a duration: `500ms`, `30s`, `2m`, `1.5h`, `7d`. A unit is required.
///
/// ```
/// use std::time::Duration;
/// use flowlib_units::parse_duration;
///
/// assert_eq!(parse_duration("30s")?, Duration::from_secs(30));
/// assert_eq!(parse_duration("1.5h")?, Duration::from_secs(5_400));
/// assert_eq!(parse_duration("250 ms")?, Duration::from_millis(250));
/// assert!(parse_duration("30").is_err());
/// assert!(parse_duration("100000000d").is_err()); // too large, never a panic
/// # Ok::<(), flowlib_units::UnitError>(())
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let q = Parsed::new(text, Quantity::Duration)?;
    if q.unit.is_empty() {
        return Err(q.error(Kind::NoUnit {
            number: q.number.to_string(),
        }));
    }
    let mult = q.multiplier(DURATION_UNITS, duration_hint(q.unit))?;
    Ok(Duration::from_nanos(q.scaled(mult)?))
}

/// A size the way people write it, in the largest binary unit it reaches, with one decimal
/// when it is not whole: `512B`, `4GiB`, `1.5MiB`. [`parse_size`] reads it back (to within
/// the rounding of that one decimal).
///
/// ```
/// assert_eq!(flowlib_units::format_bytes(4 << 30), "4GiB");
/// assert_eq!(flowlib_units::format_bytes(1536 << 10), "1.5MiB");
/// assert_eq!(flowlib_units::format_bytes(100), "100B");
/// ```
pub fn format_bytes(bytes: u64) -> String {
    for &(unit, mult) in SIZE_UNITS.iter().skip(1).rev() {
        if u128::from(bytes) >= mult {
            // Display only: the float's rounding does not show in one decimal.
            let v = bytes as f64 / mult as f64;
            return if (v - v.round()).abs() < 1e-9 {
                format!("{}{unit}", v.round() as u64)
            } else {
                format!("{v:.1}{unit}")
            };
        }
    }
    format!("{bytes}B")
}

/// A duration at millisecond precision, in the largest unit that divides it (`250ms`,
/// `30s`, `2m`, `3h`), else in seconds with one decimal (`1.5s`). [`parse_duration`] reads
/// it back.
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(flowlib_units::format_duration(Duration::from_millis(250)), "250ms");
/// assert_eq!(flowlib_units::format_duration(Duration::from_secs(120)), "2m");
/// assert_eq!(flowlib_units::format_duration(Duration::from_millis(1_500)), "1.5s");
/// ```
pub fn format_duration(duration: Duration) -> String {
    let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1_000 == 0 {
        format!("{}s", ms / 1_000)
    } else {
        format!("{:.1}s", ms as f64 / 1_000.0)
    }
}

/// A quantity split into its number and unit, the number checked for syntax.
struct Parsed<'a> {
    input: &'a str,
    quantity: Quantity,
    number: &'a str,
    unit: &'a str,
}

impl<'a> Parsed<'a> {
    fn new(input: &'a str, quantity: Quantity) -> Result<Self, UnitError> {
        let t = input.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let q = Parsed {
            input,
            quantity,
            number,
            unit: unit.trim(),
        };
        let dots = number.matches('.').count();
        if dots > 1 || number.len() == dots {
            return Err(q.error(Kind::NoNumber));
        }
        Ok(q)
    }

    fn error(&self, kind: Kind) -> UnitError {
        UnitError {
            input: self.input.to_string(),
            quantity: self.quantity,
            kind,
        }
    }

    fn multiplier(
        &self,
        units: &[(&str, u128)],
        hint: Option<&'static str>,
    ) -> Result<u128, UnitError> {
        match units.iter().find(|(u, _)| *u == self.unit) {
            Some(&(_, mult)) => Ok(mult),
            None => Err(self.error(Kind::UnknownUnit {
                unit: self.unit.to_string(),
                number: self.number.to_string(),
                hint,
            })),
        }
    }

    /// The number times `mult`, rounded to a whole, if it fits in a `u64`.
    fn scaled(&self, mult: u128) -> Result<u64, UnitError> {
        let (whole, fraction) = self.number.split_once('.').unwrap_or((self.number, ""));
        let fraction = &fraction[..fraction.len().min(FRACTION_DIGITS)];
        let whole = digits(whole).and_then(|w| w.checked_mul(mult));
        // Below 10^19 times a multiplier below 10^14: no overflow.
        let fraction = digits(fraction).map(|f| {
            let denominator = 10u128.pow(fraction.len() as u32);
            (f * mult + denominator / 2) / denominator
        });
        whole
            .zip(fraction)
            .and_then(|(w, f)| w.checked_add(f))
            .and_then(|total| u64::try_from(total).ok())
            .ok_or_else(|| self.error(Kind::TooLarge))
    }
}

/// The value of a run of ASCII digits (`0` for none), if it fits in a `u128`.
fn digits(text: &str) -> Option<u128> {
    text.bytes().try_fold(0u128, |acc, b| {
        acc.checked_mul(10)?.checked_add(u128::from(b - b'0'))
    })
}

fn size_hint(unit: &str) -> Option<&'static str> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "b" | "byte" | "bytes" => "B",
        "k" | "kb" | "ki" | "kib" => "KiB",
        "m" | "mb" | "mi" | "mib" => "MiB",
        "g" | "gb" | "gi" | "gib" => "GiB",
        "t" | "tb" | "ti" | "tib" => "TiB",
        _ => return None,
    })
}

fn duration_hint(unit: &str) -> Option<&'static str> {
    // No hint for `M`: it may mean months.
    Some(match unit.to_ascii_lowercase().as_str() {
        "ms" | "msec" | "msecs" | "millis" | "millisecond" | "milliseconds" => "ms",
        "s" | "sec" | "secs" | "second" | "seconds" => "s",
        "min" | "mins" | "minute" | "minutes" => "m",
        "h" | "hr" | "hrs" | "hour" | "hours" => "h",
        "d" | "day" | "days" => "d",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What parsing an input gives.
    enum Want {
        Bytes(u64),
        Nanos(u64),
        SizeError(&'static str),
        DurationError(&'static str),
    }
    use Want::*;

    const S: u64 = 1_000_000_000;

    /// Every case of the grammar, for both parsers.
    const CASES: &[(&str, Want)] = &[
        // Sizes: binary units, case-sensitive; a plain number is bytes.
        ("4GiB", Bytes(4 << 30)),
        ("512MiB", Bytes(512 << 20)),
        ("1KiB", Bytes(1024)),
        ("2TiB", Bytes(2 << 40)),
        ("100B", Bytes(100)),
        ("1024", Bytes(1024)),
        ("0", Bytes(0)),
        ("0GiB", Bytes(0)),
        ("1.5GiB", Bytes(3 << 29)),
        (".5KiB", Bytes(512)),
        ("2.KiB", Bytes(2048)),
        ("1.5", Bytes(2)),
        ("1.4B", Bytes(1)),
        ("0.0000000000000000000000001GiB", Bytes(0)),
        ("  8 GiB  ", Bytes(8 << 30)),
        ("00000000000000000000000000000000000000000001B", Bytes(1)),
        ("0.9999999999MiB", Bytes(1 << 20)),
        ("1.0004KiB", Bytes(1024)),
        ("1.0005KiB", Bytes(1025)),
        ("18446744073709551615", Bytes(u64::MAX)),
        ("18446744073709551615B", Bytes(u64::MAX)),
        (
            "4GB",
            SizeError("invalid size unit `GB` in `4GB`: use binary units B, KiB, MiB, GiB or TiB (did you mean \"4GiB\"?)"),
        ),
        (
            "4gib",
            SizeError("invalid size unit `gib` in `4gib`: use binary units B, KiB, MiB, GiB or TiB (did you mean \"4GiB\"?)"),
        ),
        (
            "10 k",
            SizeError("invalid size unit `k` in `10 k`: use binary units B, KiB, MiB, GiB or TiB (did you mean \"10KiB\"?)"),
        ),
        (
            "1PiB",
            SizeError("invalid size unit `PiB` in `1PiB`: use binary units B, KiB, MiB, GiB or TiB"),
        ),
        (
            "1e3",
            SizeError("invalid size unit `e3` in `1e3`: use binary units B, KiB, MiB, GiB or TiB"),
        ),
        (
            "GiB",
            SizeError("invalid size `GiB`: expected a number and a unit (B, KiB, MiB, GiB or TiB), like \"4GiB\""),
        ),
        (
            "",
            SizeError("invalid size ``: expected a number and a unit (B, KiB, MiB, GiB or TiB), like \"4GiB\""),
        ),
        (
            "-1GiB",
            SizeError("invalid size `-1GiB`: expected a number and a unit (B, KiB, MiB, GiB or TiB), like \"4GiB\""),
        ),
        (
            "1.2.3GiB",
            SizeError("invalid size `1.2.3GiB`: expected a number and a unit (B, KiB, MiB, GiB or TiB), like \"4GiB\""),
        ),
        (
            ".GiB",
            SizeError("invalid size `.GiB`: expected a number and a unit (B, KiB, MiB, GiB or TiB), like \"4GiB\""),
        ),
        (
            "18446744073709551616",
            SizeError("size `18446744073709551616` is too large: sizes stop short of 16 EiB (units: B, KiB, MiB, GiB or TiB)"),
        ),
        (
            "16777216TiB",
            SizeError("size `16777216TiB` is too large: sizes stop short of 16 EiB (units: B, KiB, MiB, GiB or TiB)"),
        ),
        (
            "99999999999999999999999999999999999999999999TiB",
            SizeError("size `99999999999999999999999999999999999999999999TiB` is too large: sizes stop short of 16 EiB (units: B, KiB, MiB, GiB or TiB)"),
        ),
        // Durations: lower-case units, a unit is required.
        ("250ms", Nanos(250_000_000)),
        ("30s", Nanos(30 * S)),
        ("30sec", Nanos(30 * S)),
        ("2m", Nanos(120 * S)),
        ("2min", Nanos(120 * S)),
        ("1.5h", Nanos(5_400 * S)),
        ("7d", Nanos(7 * 86_400 * S)),
        ("0s", Nanos(0)),
        ("5 s", Nanos(5 * S)),
        (" 24h ", Nanos(86_400 * S)),
        (".5s", Nanos(S / 2)),
        ("0.0000000015s", Nanos(2)),
        ("1.0000000000000000000000001s", Nanos(S)),
        ("213503d", Nanos(213_503 * 86_400 * S)),
        (
            "5 secs",
            DurationError("invalid duration unit `secs` in `5 secs`: use ms, s, m, h or d (did you mean \"5s\"?)"),
        ),
        (
            "5S",
            DurationError("invalid duration unit `S` in `5S`: use ms, s, m, h or d (did you mean \"5s\"?)"),
        ),
        (
            "3 hours",
            DurationError("invalid duration unit `hours` in `3 hours`: use ms, s, m, h or d (did you mean \"3h\"?)"),
        ),
        (
            "1M",
            DurationError("invalid duration unit `M` in `1M`: use ms, s, m, h or d"),
        ),
        (
            "2 weeks",
            DurationError("invalid duration unit `weeks` in `2 weeks`: use ms, s, m, h or d"),
        ),
        (
            "30",
            DurationError("duration `30` has no unit: write \"30s\" (units: ms, s, m, h, d)"),
        ),
        (
            "soon",
            DurationError("invalid duration `soon`: expected a number and a unit (ms, s, m, h or d), like \"30s\""),
        ),
        (
            "",
            DurationError("invalid duration ``: expected a number and a unit (ms, s, m, h or d), like \"30s\""),
        ),
        (
            "213504d",
            DurationError("duration `213504d` is too large: durations stop short of 2^64 nanoseconds, about 584 years (units: ms, s, m, h or d)"),
        ),
        (
            "100000000d",
            DurationError("duration `100000000d` is too large: durations stop short of 2^64 nanoseconds, about 584 years (units: ms, s, m, h or d)"),
        ),
        (
            "99999999999999999999999d",
            DurationError("duration `99999999999999999999999d` is too large: durations stop short of 2^64 nanoseconds, about 584 years (units: ms, s, m, h or d)"),
        ),
        (
            "99999999999999999999999999999999999999999999ms",
            DurationError("duration `99999999999999999999999999999999999999999999ms` is too large: durations stop short of 2^64 nanoseconds, about 584 years (units: ms, s, m, h or d)"),
        ),
    ];

    #[test]
    fn grammar() {
        for (input, want) in CASES {
            match want {
                Bytes(b) => assert_eq!(parse_size(input), Ok(*b), "{input:?}"),
                Nanos(n) => assert_eq!(
                    parse_duration(input),
                    Ok(Duration::from_nanos(*n)),
                    "{input:?}"
                ),
                SizeError(msg) => {
                    let err = parse_size(input).expect_err(input);
                    assert_eq!(err.to_string(), *msg, "{input:?}");
                    assert_eq!(err.input(), *input);
                }
                DurationError(msg) => {
                    let err = parse_duration(input).expect_err(input);
                    assert_eq!(err.to_string(), *msg, "{input:?}");
                    assert_eq!(err.input(), *input);
                }
            }
        }
    }

    #[test]
    fn formatted_values_parse_back() {
        for bytes in [0, 1, 1023, 1024, 4 << 30, 3 << 29, 5 << 40] {
            assert_eq!(parse_size(&format_bytes(bytes)), Ok(bytes));
        }
        for ms in [0, 250, 1_000, 1_500, 120_000, 5_400_000, 3_600_000] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
