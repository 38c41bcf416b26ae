//! `--disappear DURATION|off`: a disappearing timer as people write it.

/// A disappearing timer as given: seconds, or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disappear(pub Option<u32>);

/// `off`, or a duration: a number and a unit (`s`, `m`, `h`, `d`, `w`),
/// several of them run together (`1h30m`); 1 second to a year.
pub fn parse_disappear(text: &str) -> Result<Disappear, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(Disappear(None));
    }
    let bad =
        || format!("{text:?} is not a duration: give e.g. 30s, 10m, 8h, 7d, 4w or 1h30m, or `off`");
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !digits.is_empty() || total == 0 {
        return Err(bad());
    }
    match u32::try_from(total) {
        Ok(secs) if secs <= hush_protocol::MAX_TIMER_SECS => Ok(Disappear(Some(secs))),
        _ => Err(format!("{text:?} is longer than a year, the longest timer")),
    }
}

#[cfg(test)]
mod tests {
    use super::{Disappear, parse_disappear};

    #[test]
    fn disappearing_timers_parse_as_people_write_them() {
        assert_eq!(parse_disappear("off"), Ok(Disappear(None)));
        assert_eq!(parse_disappear("30s"), Ok(Disappear(Some(30))));
        assert_eq!(parse_disappear("1h30m"), Ok(Disappear(Some(5400))));
        assert_eq!(parse_disappear("7d"), Ok(Disappear(Some(7 * 86_400))));
        assert_eq!(parse_disappear("4W"), Ok(Disappear(Some(28 * 86_400))));
        for bad in [
            "",
            "0s",
            "10",
            "h",
            "5x",
            "-5m",
            "99999999999999999999s",
            "53w",
        ] {
            assert!(parse_disappear(bad).is_err(), "{bad:?} was taken");
        }
    }
}
