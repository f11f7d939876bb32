//! RFC 8785's own test vectors: the sample of §3.2.2 (numbers, string escapes, literals), the
//! member sorting of §3.2.3, and the number serialisations of Appendix B.

use super::*;

fn canonical(text: &str) -> String {
    let value: Value = serde_json::from_str(text).unwrap();
    String::from_utf8(to_vec(&value).unwrap()).unwrap()
}

#[test]
fn the_rfc_8785_sample_is_written_as_the_rfc_writes_it() {
    // §3.2.2, with its output from §3.2.3. Its first number is read as RFC 8785 means it only
    // with serde_json's `float_roundtrip` (the default parser is one unit in the last place off).
    let input = r#"{
        "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
        "literals": [null, true, false]
    }"#;
    assert_eq!(
        canonical(input),
        r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
    );
}

#[test]
fn members_are_sorted_by_utf_16_code_units_not_by_code_points() {
    // §3.2.3: the emoji (a surrogate pair in UTF-16) sorts before U+FB33, after it in UTF-8.
    let input = r#"{
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\ud83d\ude00": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis"
    }"#;
    assert_eq!(
        canonical(input),
        concat!(
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",",
            "\"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",",
            "\"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
        )
    );
}

#[test]
fn numbers_are_written_as_ecmascript_writes_the_double_appendix_b() {
    let vectors: [(u64, &str); 24] = [
        (0x0000000000000000, "0"),
        (0x8000000000000000, "0"),
        (0x0000000000000001, "5e-324"),
        (0x8000000000000001, "-5e-324"),
        (0x7fefffffffffffff, "1.7976931348623157e+308"),
        (0xffefffffffffffff, "-1.7976931348623157e+308"),
        (0x4340000000000000, "9007199254740992"),
        (0xc340000000000000, "-9007199254740992"),
        (0x4430000000000000, "295147905179352830000"),
        (0x44b52d02c7e14af5, "9.999999999999997e+22"),
        (0x44b52d02c7e14af6, "1e+23"),
        (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
        (0x444b1ae4d6e2ef4e, "999999999999999700000"),
        (0x444b1ae4d6e2ef4f, "999999999999999900000"),
        (0x444b1ae4d6e2ef50, "1e+21"),
        (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
        (0x3eb0c6f7a0b5ed8d, "0.000001"),
        (0x41b3de4355555553, "333333333.3333332"),
        (0x41b3de4355555554, "333333333.33333325"),
        (0x41b3de4355555555, "333333333.3333333"),
        (0x41b3de4355555556, "333333333.3333334"),
        (0x41b3de4355555557, "333333333.33333343"),
        (0xbecbf647612f3696, "-0.0000033333333333333333"),
        (0x43143ff3c1cb0959, "1424953923781206.2"),
    ];
    for (bits, expected) in vectors {
        let number = Number::from_f64(f64::from_bits(bits)).unwrap();
        let mut out = Vec::new();
        write_number(&number, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), expected, "{bits:#018x}");
    }
}

#[test]
fn integers_are_written_as_the_double_they_stand_for() {
    assert_eq!(canonical("[10, 10.0, 1e1, -0, 0.0]"), "[10,10,10,0,0]");
    // 2^53 + 1 has no double: it is read as I-JSON readers read it.
    assert_eq!(canonical("9007199254740993"), "9007199254740992");
    assert_eq!(canonical("18446744073709551615"), "18446744073709552000");
    assert_eq!(canonical("-9223372036854775808"), "-9223372036854776000");
}

#[test]
fn only_quote_backslash_and_controls_are_escaped() {
    let text = "\u{0}\u{7}\u{8}\t\n\u{b}\u{c}\r\u{1f} \"\\/\u{7f}é\u{2028}😀";
    let mut out = Vec::new();
    write_string(text, &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "\"\\u0000\\u0007\\b\\t\\n\\u000b\\f\\r\\u001f \\\"\\\\/\u{7f}é\u{2028}😀\""
    );
}
