//! Durations in Mesos' flag syntax: a number and a unit, e.g. `15secs`, `500ms`, `10mins`,
//! `1hrs`, `2days`, `1weeks`; the short forms `s`, `m`, `h`, `d` are accepted too.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: {why}")]
pub struct DurationError {
    pub text: String,
    pub why: &'static str,
}

/// Parses a Mesos-style duration.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let err = |why| DurationError {
        text: text.to_string(),
        why,
    };
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| err("a unit is missing (ns, us, ms, secs, mins, hrs, days, weeks)"))?;
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| err("it does not start with a number"))?;
    let scale = match unit {
        "ns" => 1e-9,
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" | "sec" | "secs" => 1.0,
        "m" | "min" | "mins" => 60.0,
        "h" | "hr" | "hrs" => 3600.0,
        "d" | "day" | "days" => 86400.0,
        "w" | "week" | "weeks" => 604800.0,
        _ => {
            return Err(err(
                "unknown unit (use ns, us, ms, secs, mins, hrs, days or weeks)",
            ))
        }
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > 1e12 {
        return Err(err("it is too large"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn mesos_units() {
        assert_eq!(parse_duration("15secs").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10mins").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1.5hrs").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("15")
            .unwrap_err()
            .to_string()
            .contains("unit"));
        assert!(parse_duration("secs").is_err());
        assert!(parse_duration("5parsecs").is_err());
    }
}
