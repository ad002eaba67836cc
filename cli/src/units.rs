//! Human units: CPUs without trailing zeros, memory (Mesos counts it in MB, meaning MiB) in
//! MiB, GiB or TiB.

/// `2.0` → `2`, `0.5` → `0.5`, `0.1234` → `0.123` (Mesos keeps three decimals of a CPU).
pub fn format_cpus(cpus: f64) -> String {
    format_decimal(cpus)
}

/// A non-negative number with at most three decimals and no trailing zeros (a role's weight).
pub fn format_decimal(value: f64) -> String {
    trim_decimals(format!("{:.3}", sanitize(value)))
}

/// Memory given in MiB: `512` → `512 MiB`, `1536` → `1.5 GiB`, `3145728` → `3 TiB`.
pub fn format_mem(mib: f64) -> String {
    let mib = sanitize(mib);
    if mib < 1024.0 {
        format!("{} MiB", trim_decimals(format!("{mib:.1}")))
    } else if mib < 1024.0 * 1024.0 {
        format!("{} GiB", trim_decimals(format!("{:.1}", mib / 1024.0)))
    } else {
        format!(
            "{} TiB",
            trim_decimals(format!("{:.1}", mib / (1024.0 * 1024.0)))
        )
    }
}

/// Parses a memory size for `--mem`: a number of MiB, optionally with a unit (`M`, `MB`, `MiB`,
/// `G`, `GB`, `GiB`; case-insensitive; MB means MiB, as in Mesos).
pub fn parse_mem(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a memory size like 512 or 2GiB"))?;
    let factor = match unit.to_ascii_lowercase().as_str() {
        "" | "m" | "mb" | "mib" => 1.0,
        "g" | "gb" | "gib" => 1024.0,
        _ => {
            return Err(format!(
                "unknown memory unit {unit:?} in {text:?} (use MiB or GiB)"
            ))
        }
    };
    let mib = number * factor;
    if !mib.is_finite() || mib <= 0.0 {
        return Err(format!("{text:?} must be greater than zero"));
    }
    Ok(mib)
}

/// Named scalars on one line, `1.5 cpus, 512 MiB, 10 GiB disk, 1 gpus, 3 foo`: cpus, mem, disk
/// and gpus first, then the rest by name; zeros left out; `-` when nothing is left.
pub fn format_resources<'a>(items: impl IntoIterator<Item = (&'a str, f64)>) -> String {
    let rank = |name: &str| {
        ["cpus", "mem", "disk", "gpus"]
            .iter()
            .position(|known| *known == name)
            .unwrap_or(4)
    };
    let mut items: Vec<(&str, f64)> = items
        .into_iter()
        .filter(|(_, value)| sanitize(*value) > 0.0)
        .collect();
    items.sort_by(|a, b| (rank(a.0), a.0).cmp(&(rank(b.0), b.0)));
    let parts: Vec<String> = items
        .into_iter()
        .map(|(name, value)| match name {
            "mem" => format_mem(value),
            "disk" => format!("{} disk", format_mem(value)),
            _ => format!("{} {name}", format_cpus(value)),
        })
        .collect();
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(", ")
    }
}

fn sanitize(value: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        0.0
    }
}

fn trim_decimals(text: String) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cpus() {
        assert_eq!(format_cpus(2.0), "2");
        assert_eq!(format_cpus(0.5), "0.5");
        assert_eq!(format_cpus(0.1234), "0.123");
        assert_eq!(format_cpus(0.0), "0");
        assert_eq!(format_cpus(f64::NAN), "0");
        assert_eq!(format_cpus(10.0), "10");
    }

    #[test]
    fn mem() {
        assert_eq!(format_mem(64.0), "64 MiB");
        assert_eq!(format_mem(0.5), "0.5 MiB");
        assert_eq!(format_mem(1000.0), "1000 MiB");
        assert_eq!(format_mem(1024.0), "1 GiB");
        assert_eq!(format_mem(1536.0), "1.5 GiB");
        assert_eq!(format_mem(15_000.0), "14.6 GiB");
        assert_eq!(format_mem(3.0 * 1024.0 * 1024.0), "3 TiB");
        assert_eq!(format_mem(-1.0), "0 MiB");
    }

    #[test]
    fn resource_lists() {
        assert_eq!(
            format_resources([
                ("mem", 512.0),
                ("foo", 3.0),
                ("cpus", 1.5),
                ("disk", 10240.0)
            ]),
            "1.5 cpus, 512 MiB, 10 GiB disk, 3 foo"
        );
        assert_eq!(format_resources([("gpus", 1.0), ("cpus", 0.0)]), "1 gpus");
        assert_eq!(format_resources([]), "-");
    }

    #[test]
    fn mem_parsing() {
        assert_eq!(parse_mem("64").unwrap(), 64.0);
        assert_eq!(parse_mem("512MiB").unwrap(), 512.0);
        assert_eq!(parse_mem("1.5 GiB").unwrap(), 1536.0);
        assert_eq!(parse_mem("2g").unwrap(), 2048.0);
        assert!(parse_mem("0").is_err());
        assert!(parse_mem("-5").is_err());
        assert!(parse_mem("5 TB").is_err());
        assert!(parse_mem("lots").is_err());
    }
}
