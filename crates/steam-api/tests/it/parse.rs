//! `parse_workshop_ref`: what users paste, good and bad.

use steam_api::{parse_workshop_ref, SteamError};

#[test]
fn accepts_ids_and_workshop_urls() {
    let good = [
        ("123456789", 123456789),
        ("  3434972877  ", 3434972877),
        (
            "https://steamcommunity.com/sharedfiles/filedetails/?id=123456789",
            123456789,
        ),
        (
            "https://steamcommunity.com/sharedfiles/filedetails?id=123456789",
            123456789,
        ),
        (
            "https://steamcommunity.com/workshop/filedetails/?id=123456789",
            123456789,
        ),
        (
            "http://steamcommunity.com/sharedfiles/filedetails/?id=123456789",
            123456789,
        ),
        (
            "https://www.steamcommunity.com/sharedfiles/filedetails/?id=123456789",
            123456789,
        ),
        (
            "https://steamcommunity.com/sharedfiles/filedetails/?id=2256379828&searchtext=bhop+",
            2256379828,
        ),
        (
            "https://steamcommunity.com/sharedfiles/filedetails/?l=german&id=2256379828",
            2256379828,
        ),
        (
            "https://steamcommunity.com/sharedfiles/filedetails/?id=123#comments",
            123,
        ),
        (
            "HTTPS://STEAMCOMMUNITY.COM/sharedfiles/filedetails/?id=42",
            42,
        ),
        (
            "\thttps://steamcommunity.com/sharedfiles/filedetails/?id=7 \n",
            7,
        ),
        ("18446744073709551615", u64::MAX),
    ];
    for (input, want) in good {
        assert_eq!(parse_workshop_ref(input).unwrap(), want, "{input:?}");
    }
}

#[test]
fn refuses_everything_else_naming_the_input() {
    let bad = [
        ("", "it is empty"),
        ("   ", "it is empty"),
        ("abc", "expected a number"),
        ("12a", "expected a number"),
        ("-5", "expected a number"),
        ("0", "must not be 0"),
        ("18446744073709551616", "too large"),
        (
            "steamcommunity.com/sharedfiles/filedetails/?id=1",
            "expected a number",
        ),
        (
            "ftp://steamcommunity.com/sharedfiles/filedetails/?id=1",
            "http:// or https://",
        ),
        (
            "https://evil.example/sharedfiles/filedetails/?id=1",
            "not on steamcommunity.com",
        ),
        (
            "https://steamcommunity.com.evil.example/sharedfiles/filedetails/?id=1",
            "not on steamcommunity.com",
        ),
        (
            "https://steamcommunity.com/id/robinwalker/",
            "not a workshop item page",
        ),
        (
            "https://steamcommunity.com/sharedfiles/filedetails/",
            "no ?id= parameter",
        ),
        (
            "https://steamcommunity.com/sharedfiles/filedetails/?id=",
            "digits only",
        ),
        (
            "https://steamcommunity.com/sharedfiles/filedetails/?id=12x",
            "digits only",
        ),
        (
            "https://steamcommunity.com/sharedfiles/filedetails/?id=1&id=2",
            "more than one id=",
        ),
        ("https://", "not a valid URL"),
    ];
    for (input, reason) in bad {
        let err = parse_workshop_ref(input).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, SteamError::InvalidRef { .. }), "{input:?}");
        assert!(msg.contains(reason), "{input:?}: {msg}");
        assert!(
            msg.contains(&format!("{:?}", input.trim())),
            "{input:?}: {msg}"
        );
    }
}

#[test]
fn long_input_is_shortened_in_the_message() {
    let long = "x".repeat(10_000);
    let msg = parse_workshop_ref(&long).unwrap_err().to_string();
    assert!(msg.len() < 400, "{}", msg.len());
    assert!(msg.contains('…'));
}
