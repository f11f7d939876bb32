//! Just enough DER to read what the proxy needs from certificates and keys: one TLV element at a
//! time. Not a general ASN.1 parser.

/// Splits `input` into (tag, contents, rest) for its first element; `None` when malformed.
pub fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0]` EXPLICIT: the version field of a v3 certificate.
const CONTEXT_0: u8 = 0xa0;

/// A certificate's notAfter as a Unix timestamp.
pub fn certificate_not_after(cert: &[u8]) -> Option<i64> {
    let (SEQUENCE, certificate, _) = element(cert)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = element(certificate)? else {
        return None;
    };
    let (tag, _, mut rest) = element(tbs)?;
    if tag == CONTEXT_0 {
        rest = element(rest)?.2; // serial number
    }
    let rest = element(rest)?.2; // signature algorithm
    let rest = element(rest)?.2; // issuer
    let (SEQUENCE, validity, _) = element(rest)? else {
        return None;
    };
    let (_, _, after) = element(validity)?; // notBefore
    let (tag, time, _) = element(after)?;
    parse_time(tag, std::str::from_utf8(time).ok()?)
}

/// UTCTime `YYMMDDHHMMSSZ` or GeneralizedTime `YYYYMMDDHHMMSSZ` to a Unix timestamp.
fn parse_time(tag: u8, text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let (year, rest) = match tag {
        UTC_TIME if text.len() == 12 => {
            let yy: i64 = text[..2].parse().ok()?;
            // RFC 5280 §4.1.2.5.1: two-digit years 50–99 are 19xx.
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        GENERALIZED_TIME if text.len() == 14 => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day, hour, minute, second) =
        (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_convert_to_unix_seconds() {
        assert_eq!(parse_time(UTC_TIME, "700101000000Z"), Some(0));
        assert_eq!(parse_time(UTC_TIME, "491231235959Z"), Some(2_524_607_999));
        assert_eq!(
            parse_time(GENERALIZED_TIME, "20260227120000Z"),
            Some(1_772_193_600)
        );
        assert_eq!(parse_time(UTC_TIME, "2602271200Z"), None);
    }

    #[test]
    fn long_form_lengths_are_read() {
        let mut der = vec![0x04, 0x81, 0x80];
        der.extend(std::iter::repeat_n(7u8, 0x80));
        der.push(0x05);
        let (tag, contents, rest) = element(&der).unwrap();
        assert_eq!((tag, contents.len(), rest), (0x04, 0x80, &[0x05][..]));
        assert!(element(&[0x04, 0x85, 1, 2, 3, 4, 5]).is_none());
    }
}
