//! Durations on the command line, as Kubernetes and Go write them: `87600h`, `30m`, `600s`, or
//! a combination (`1h30m`).

use std::time::Duration;

/// Parses `text`; clap calls this for duration flags.
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration like 8760h, 30m or 600s");
    if text.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let value: u64 = number.parse().map_err(|_| bad())?;
        number.clear();
        total = value
            .checked_mul(unit)
            .and_then(|seconds| total.checked_add(seconds))
            .ok_or_else(bad)?;
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_durations() {
        assert_eq!(parse("87600h"), Ok(Duration::from_secs(87_600 * 3600)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("600s"), Ok(Duration::from_secs(600)));
        for bad in ["", "10", "h", "1d", "0s", "-5m", "1.5h"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
