//! Ruby's `Float#to_s`, which both `JSON.generate` and Psych use for floats: the shortest
//! round-trip digits, in fixed notation from 1e-4 to below 1e15 in magnitude (always with a
//! fractional part, `1.0`) and in `1.5e-05` / `1.0e+15` notation otherwise.

/// Formats a finite `f64` the way Ruby prints it.
pub fn ruby_float(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits as Ruby's dtoa (mode 0).
    let sci = format!("{:e}", f.abs());
    let (mantissa, exponent) = sci.split_once('e').expect("`{:e}` always has an exponent");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exponent: i32 = exponent.parse().expect("`{:e}` exponent is an integer");
    let point = exponent + 1; // digits are 0.DIGITS × 10^point
    let sign = if f < 0.0 { "-" } else { "" };
    let body = if !(-4 < point && point <= 15) {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        format!("{first}.{rest}e{exp_sign}{:02}", exponent.abs())
    } else if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else {
        let point = point as usize;
        if point >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point - digits.len()))
        } else {
            format!("{}.{}", &digits[..point], &digits[point..])
        }
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::ruby_float;

    #[test]
    fn matches_ruby_float_to_s() {
        // Expected values printed by `ruby -e 'p 1e20'` etc. (Ruby 3.1).
        for (f, want) in [
            (1.0, "1.0"),
            (2.5, "2.5"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (1e20, "1.0e+20"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (1e14, "100000000000000.0"),
            (123456789012345.0, "123456789012345.0"),
            (1e15, "1.0e+15"),
            (1234567890123456.0, "1.234567890123456e+15"),
            (100000000000000.5, "100000000000000.5"),
            (0.00012, "0.00012"),
            (-12.375, "-12.375"),
            (1.0e-300, "1.0e-300"),
            (0.1 + 0.2, "0.30000000000000004"),
        ] {
            assert_eq!(ruby_float(f), want, "{f:e}");
        }
    }
}
