//! Fractions as people write them on the command line: `10%` or `0.1`.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fraction {input:?}: write a percentage such as 10% or a fraction such as 0.1")]
pub struct FractionError {
    input: String,
}

/// Parses `10%` (0.1), `2.5%` (0.025) or `0.1`. A bare number above 1 is refused, since `10`
/// could mean 10 % or 1,000 %.
pub fn parse_fraction(input: &str) -> Result<f64, FractionError> {
    let error = || FractionError { input: input.to_owned() };
    let text = input.trim();
    let value = match text.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map_err(|_| error())? / 100.0,
        None => text.parse::<f64>().ok().filter(|v| *v <= 1.0).ok_or_else(error)?,
    };
    if value.is_finite() && value >= 0.0 { Ok(value) } else { Err(error()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_percentages_and_fractions() {
        assert_eq!(parse_fraction("10%"), Ok(0.1));
        assert_eq!(parse_fraction(" 2.5 % "), Ok(0.025));
        assert_eq!(parse_fraction("0.1"), Ok(0.1));
        assert_eq!(parse_fraction("0"), Ok(0.0));
        assert_eq!(parse_fraction("150%"), Ok(1.5));
    }

    #[test]
    fn refuses_ambiguous_or_negative_values() {
        for bad in ["10", "-5%", "-0.1", "ten%", "", "%", "NaN%", "inf"] {
            assert!(parse_fraction(bad).is_err(), "{bad}");
        }
    }
}
