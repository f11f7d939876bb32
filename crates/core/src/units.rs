//! Human-written quantities in config files: durations (`"30s"`, `"10m"`) and sizes (`"1MiB"`).

use std::time::Duration;

/// Parses `"<number><unit>"` with unit `ms`, `s`, `m`, `h` or `d`. A bare number is refused: a
/// config that says `timeout = "30"` could mean seconds or milliseconds, so it must say which.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = split_number(s)?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "" => {
            return Err(format!(
                "{s:?} needs a unit: ms, s, m, h or d (e.g. \"30s\")"
            ));
        }
        _ => return Err(format!("{s:?} has an unknown unit (use ms, s, m, h or d)")),
    };
    number
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// Parses a byte size: a bare number of bytes, or with `KiB`, `MiB` (or `KB`/`MB`, taken as the
/// same binary units, since nobody means 1000 here).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let (number, unit) = split_number(s)?;
    let bytes_per_unit: u64 = match unit {
        "" | "B" => 1,
        "KiB" | "KB" | "k" => 1024,
        "MiB" | "MB" | "M" => 1024 * 1024,
        _ => return Err(format!("{s:?} has an unknown unit (use B, KiB or MiB)")),
    };
    number
        .checked_mul(bytes_per_unit)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{s:?} is not a usable size"))
}

fn split_number(s: &str) -> Result<(u64, &str), String> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!("{s:?} does not start with a number"));
    }
    let number = s[..digits]
        .parse()
        .map_err(|_| format!("{s:?} is too large"))?;
    Ok((number, s[digits..].trim_start()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_their_unit() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
    }

    #[test]
    fn duration_without_unit_is_refused() {
        assert!(parse_duration("30").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("3w").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("8 KiB"), Ok(8192));
        assert_eq!(parse_size("512"), Ok(512));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1GB").is_err());
    }
}
