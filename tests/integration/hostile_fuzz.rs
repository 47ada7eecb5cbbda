//! Hostile input, found by a machine: a property test that writes arbitrary bytes and arbitrary
//! JSON job shapes into `queue:default`, `schedule`, `retry`, `dead` and the working list of a
//! process that died (crash recovery's input) of a real Redis, runs a real worker over them, and
//! checks after every run that
//!
//! 1. the worker neither hung nor panicked nor failed, and good jobs written afterwards to the
//!    queue, to `schedule` and to `retry` (due) still ran;
//! 2. every entry written is in exactly one place, and in the right one for what it is: a job
//!    Sidekiq would run ran (or, for a class only Ruby knows, waits in `retry` or the dead set);
//!    a job for another queue was promoted there with its numbers and jid unchanged; what is not a
//!    job is in `dead` (as stored, or wrapped as `jobs::InvalidPayload` around exactly the
//!    stored text); what was not due, and everything written to `dead`, is untouched;
//! 3. nothing is left in any `jobs:working:*` list, nor due in `schedule` or `retry`, nor waiting
//!    in `queue:default`;
//! 4. every dashboard page answers below 500 with every entry in place (before the run), while
//!    the worker runs, and after it: the tabs, `?substr=` searches of each set, the detail page of
//!    every set member and every link those pages show.
//!
//! Why proptest and not cargo-fuzz: the thing under test is a worker against a real Redis and
//! the dashboard over that Redis, not a parser function. proptest runs as an ordinary `cargo
//! test` against real servers, so CI runs it with the other integration tests; a fixed seed makes
//! the short CI run the same every time; and when a case fails it shrinks the batch to the
//! smallest input that still fails, which is the bug report. cargo-fuzz needs a nightly
//! toolchain (this machine and CI cannot install one), wants a function it can call millions of
//! times a second in-process, and gives no structure to its inputs; here each case costs a worker
//! start and stop (about a second), so guided structure beats raw speed. The payload parser's own
//! "no panics" property is cheap enough for millions of cases, but that is `Payload::from_json`,
//! not this.
//!
//! Running it:
//! - `cargo test --test integration hostile_`: the CI run, `JOBS_FUZZ_CASES` cases (24 by
//!   default) from seed `JOBS_FUZZ_SEED` (fixed by default), failing at the first bad case and
//!   printing its shrunk input.
//! - `cargo test --test integration hostile_ -- --ignored`: the long run (1,000 cases unless
//!   `JOBS_FUZZ_CASES` says otherwise) that keeps going, counts what every kind of input got and
//!   prints the table for RELIABILITY.md; it fails at the end if anything broke.
//! - `JOBS_FUZZ_KINDS=retry,utf8` limits the generator to those families (the names are in
//!   `FAMILIES`) and `JOBS_FUZZ_TARGETS=retry_due,dead` to those places (`Target::name`), to
//!   shrink one bug at a time; `JOBS_FUZZ_TALLY=1` makes the short run count
//!   rather than stop; `JOBS_FUZZ_SHRINK_SECS` bounds shrinking (60 s by default).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use jobs::Payload;
use jobs::api::{JobRecord, SortedEntry};
use proptest::prelude::*;
use proptest::strategy::{Union, W};
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};
use redis::AsyncCommands;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::jobs::{CallLog, Record, worker};
use crate::support::{TestRedis, now};

// ---------------------------------------------------------------------------------------------
// The tests.

/// The CI run: a few cases from a fixed seed; the first bad case fails the test, shrunk.
#[test]
fn hostile_input_keeps_every_entry_in_one_place_and_every_page_up() {
    fuzz(&Settings::from_env(24, false));
}

/// The long run whose figures go to RELIABILITY.md: counts every outcome, fails at the end.
#[test]
#[ignore = "the long run (1,000 cases, about 20 minutes); its figures are in RELIABILITY.md"]
fn hostile_input_long_run() {
    fuzz(&Settings::from_env(1_000, true));
}

/// The violations of one case, each failing page shown once per route and answer.
fn summary(violations: &[Violation]) -> String {
    let mut pages: BTreeMap<&str, usize> = BTreeMap::new();
    let mut lines = Vec::new();
    for violation in violations {
        if violation.invariant == "page" {
            let seen = pages.entry(&violation.row).or_default();
            *seen += 1;
            if *seen > 1 {
                continue;
            }
        }
        lines.push(violation.to_string());
    }
    for (row, count) in pages.into_iter().filter(|(_, count)| *count > 1) {
        lines.push(format!("page: {count} requests in all got {row}"));
    }
    lines.join("\n")
}

/// What the environment asks for.
struct Settings {
    cases: u32,
    seed: u64,
    shrink: Duration,
    families: Vec<&'static str>,
    targets: Vec<Target>,
    tally: bool,
}

impl Settings {
    fn from_env(default_cases: u32, tally: bool) -> Self {
        let number = |name: &str, default: u64| {
            std::env::var(name).map_or(default, |text| {
                text.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={text} is not a number"))
            })
        };
        let families = match std::env::var("JOBS_FUZZ_KINDS") {
            Ok(list) if !list.trim().is_empty() => list
                .split(',')
                .map(|name| {
                    FAMILIES
                        .iter()
                        .map(|(family, _)| *family)
                        .find(|family| *family == name.trim())
                        .unwrap_or_else(|| panic!("JOBS_FUZZ_KINDS: no family {name}"))
                })
                .collect(),
            _ => FAMILIES.iter().map(|(family, _)| *family).collect(),
        };
        let targets = match std::env::var("JOBS_FUZZ_TARGETS") {
            Ok(list) if !list.trim().is_empty() => list
                .split(',')
                .map(|name| {
                    TARGETS
                        .iter()
                        .find(|(target, _)| target.name() == name.trim())
                        .map(|(target, _)| *target)
                        .unwrap_or_else(|| panic!("JOBS_FUZZ_TARGETS: no target {name}"))
                })
                .collect(),
            _ => TARGETS.iter().map(|(target, _)| *target).collect(),
        };
        Self {
            cases: u32::try_from(number("JOBS_FUZZ_CASES", u64::from(default_cases)))
                .expect("JOBS_FUZZ_CASES fits in u32"),
            seed: number("JOBS_FUZZ_SEED", 0x6a6f_6273_6675_7a7a),
            shrink: Duration::from_secs(number("JOBS_FUZZ_SHRINK_SECS", 60)),
            families,
            targets,
            tally: tally || std::env::var("JOBS_FUZZ_TALLY").is_ok_and(|value| value == "1"),
        }
    }
}

fn fuzz(settings: &Settings) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let redis = TestRedis::start();
    let tally = Mutex::new(Tally::default());
    let config = Config {
        cases: settings.cases,
        rng_seed: RngSeed::Fixed(settings.seed),
        failure_persistence: None,
        max_shrink_time: u32::try_from(settings.shrink.as_millis()).unwrap_or(u32::MAX),
        max_shrink_iters: 10_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let started = Instant::now();
    let result = runner.run(&case(&settings.families, &settings.targets), |case| {
        let violations = runtime.block_on(run_case(&redis, &case, &tally));
        if violations.is_empty() || settings.tally {
            Ok(())
        } else {
            Err(TestCaseError::fail(summary(&violations)))
        }
    });
    let tally = tally.into_inner().expect("the tally");
    println!(
        "hostile fuzz: seed {}, {} cases, {:.1} s\n{}",
        settings.seed,
        settings.cases,
        started.elapsed().as_secs_f64(),
        tally.report()
    );
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, minimal)) => panic!(
            "a hostile input broke an invariant (seed {}; rerun with JOBS_FUZZ_SEED={} \
             JOBS_FUZZ_CASES={}):\n{reason}\nminimal input: {minimal:#?}",
            settings.seed, settings.seed, settings.cases
        ),
        Err(TestError::Abort(reason)) => panic!("proptest gave up: {reason}"),
    }
    assert!(
        tally.broken() == 0,
        "{} invariants broken in {} cases; the table above says where",
        tally.broken(),
        tally.cases
    );
}

// ---------------------------------------------------------------------------------------------
// What the generator makes: JSON values of any type, jobs with one thing wrong, and worse.

/// A JSON value, written by hand so it can hold what serde_json cannot: integers beyond 64
/// bits, `1e400`.
#[derive(Clone, Debug)]
enum J {
    Null,
    Bool(bool),
    Int(i64),
    /// Decimal digits beyond 64 bits.
    Big(String),
    /// A finite float, written as serde_json writes it (shortest round trip).
    Float(f64),
    /// A number out of f64's range, such as `1e400`.
    Huge(&'static str),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Self::Null => out.push_str("null"),
            Self::Bool(value) => out.push_str(if *value { "true" } else { "false" }),
            Self::Int(value) => {
                let _ = write!(out, "{value}");
            }
            Self::Big(digits) => out.push_str(digits),
            Self::Float(value) => out.push_str(&float_text(*value)),
            Self::Huge(literal) => out.push_str(literal),
            Self::Str(text) => out.push_str(&quote(text)),
            Self::Arr(items) => {
                out.push('[');
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Self::Obj(fields) => {
                out.push('{');
                for (n, (key, value)) in fields.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    out.push_str(&quote(key));
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }

    fn has_huge(&self) -> bool {
        match self {
            Self::Huge(_) => true,
            Self::Arr(items) => items.iter().any(Self::has_huge),
            Self::Obj(fields) => fields.iter().any(|(_, value)| value.has_huge()),
            _ => false,
        }
    }
}

fn quote(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

fn float_text(value: f64) -> String {
    serde_json::to_string(&value).expect("a float serializes")
}

/// Numbers JSON can write and f64 cannot hold.
const HUGE: &[&str] = &["1e400", "-1e400", "1E+999", "2e308"];

/// Texts that have broken dashboards and key builders before.
const SPECIAL_TEXT: &[&str] = &[
    "",
    " ",
    "default",
    "Record",
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(1)>",
    "javascript:alert(1)",
    "../../etc/passwd",
    "%2F%00%",
    "*?[]\\",
    "1.5-abc",
    "-",
    "\u{202e}gnp.exe",
    "\u{0}",
    "\u{1f600}",
    "\r\n",
    "&amp;",
    "queue:default",
];

fn text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "(?s).{0,12}",
        2 => prop::sample::select(SPECIAL_TEXT).prop_map(str::to_owned),
        1 => (1_usize..300).prop_map(|n| "\u{fc}".repeat(n)),
    ]
    .boxed()
}

/// Integers beyond u64::MAX or below i64::MIN (21 to 39 digits).
fn big_int() -> BoxedStrategy<String> {
    (any::<bool>(), "[1-9][0-9]{20,38}")
        .prop_map(|(negative, digits)| {
            if negative {
                format!("-{digits}")
            } else {
                digits
            }
        })
        .boxed()
}

/// Finite floats: any bit pattern (17 significant digits, subnormals), and the extremes.
fn float() -> BoxedStrategy<f64> {
    prop_oneof![
        3 => any::<u64>()
            .prop_map(f64::from_bits)
            .prop_filter("finite", |value| value.is_finite()),
        1 => prop::sample::select(vec![
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            5e-324,
            -0.0,
            1e308,
            0.1 + 0.2,
            1e21,
            9_007_199_254_740_993.0,
        ]),
    ]
    .boxed()
}

/// A JSON value of any type, nested a little; with `huge`, numbers out of f64's range too.
fn value(huge: bool) -> BoxedStrategy<J> {
    let mut leaves: Vec<W<BoxedStrategy<J>>> = vec![
        (1, Just(J::Null).boxed()),
        (1, any::<bool>().prop_map(J::Bool).boxed()),
        (2, any::<i64>().prop_map(J::Int).boxed()),
        (1, big_int().prop_map(J::Big).boxed()),
        (1, float().prop_map(J::Float).boxed()),
        (3, text().prop_map(J::Str).boxed()),
    ];
    if huge {
        leaves.push((1, prop::sample::select(HUGE).prop_map(J::Huge).boxed()));
    }
    Union::new_weighted(leaves)
        .prop_recursive(3, 12, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(J::Arr),
                prop::collection::vec((text(), inner), 0..4).prop_map(J::Obj),
            ]
        })
        .boxed()
}

/// The class of a generated job.
#[derive(Clone, Copy, Debug)]
enum Class {
    /// `Record`: the worker runs it and logs its label.
    Record,
    /// `RecordSlowly`: runs this many milliseconds first (the Busy page shows it).
    Slowly(u64),
    /// A class only Ruby knows: the Rust worker fails it (`jobs::UnknownJob`), and retries it.
    Ruby,
}

/// A valid job before anything is done to it.
#[derive(Clone, Debug)]
struct Base {
    class: Class,
    /// `ruby` rather than `default`: the worker does not take from it.
    ruby_queue: bool,
    jid: String,
}

impl Base {
    fn queue(&self) -> &'static str {
        if self.ruby_queue { "ruby" } else { "default" }
    }

    /// Whether the worker can run it (a class it knows, with arguments that decode).
    fn runs(&self) -> bool {
        !matches!(self.class, Class::Ruby)
    }

    /// Its fields, in Sidekiq's order, as (key, JSON text); the marker is the first argument.
    fn fields(&self, marker: &str) -> Vec<(String, String)> {
        let (class, args) = match self.class {
            Class::Record => ("Record", format!("[{}]", quote(marker))),
            Class::Slowly(millis) => ("RecordSlowly", format!("[{},{millis}]", quote(marker))),
            Class::Ruby => ("RubyJob", format!("[{},1,\"two\"]", quote(marker))),
        };
        [
            ("class", quote(class)),
            ("args", args),
            ("jid", quote(&self.jid)),
            ("queue", quote(self.queue())),
            ("retry", "true".to_owned()),
            ("created_at", "1767225600.25".to_owned()),
            ("enqueued_at", "1767225600.5".to_owned()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
    }
}

fn base() -> BoxedStrategy<Base> {
    (
        prop_oneof![
            6 => Just(Class::Record),
            1 => (100_u64..1_200).prop_map(Class::Slowly),
            2 => Just(Class::Ruby),
        ],
        prop::bool::weighted(0.2),
        "[0-9a-f]{24}",
    )
        .prop_map(|(class, ruby_queue, jid)| Base {
            class,
            ruby_queue,
            jid,
        })
        .boxed()
}

fn object(fields: &[(String, String)]) -> String {
    let mut out = String::from("{");
    for (n, (key, value)) in fields.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&quote(key));
        out.push(':');
        out.push_str(value);
    }
    out.push('}');
    out
}

fn set_field(fields: &mut Vec<(String, String)>, key: &str, value: String) {
    match fields.iter_mut().find(|(name, _)| name == key) {
        Some(field) => field.1 = value,
        None => fields.push((key.to_owned(), value)),
    }
}

/// One thing done to a valid job: the rows of the review's payload table.
#[derive(Clone, Debug)]
enum Dev {
    /// Nothing: the control.
    Plain,
    /// `retry` of an odd type (`"5"`, `5.0`, `{}`, …).
    Retry(J),
    /// `retry_count` negative, float, string, huge.
    RetryCount(J),
    /// Another option of an odd type (`tags:[1]`, `backtrace:"x"`, `retry_for:3600.5`, …).
    Option(&'static str, J),
    /// `jid` or `queue` left out.
    Missing(&'static str),
    /// A key written twice; the second (last) is the job's own value, as Ruby reads it.
    Duplicate(&'static str, J),
    /// A time as a string.
    StringTime(&'static str, String),
    /// Integers beyond 64 bits: in the arguments of a Ruby job, in an extra field otherwise.
    BigInts(Vec<String>),
    /// Floats with 17 significant digits and the extremes, placed as `BigInts`.
    Floats(Vec<f64>),
    /// `1e400` and such, placed as `BigInts`.
    Infinite(&'static str),
    /// An empty string where a name goes.
    Empty(&'static str),
    /// Extra fields Sidekiq allows, with odd contents.
    Legal(Vec<(String, J)>),
    /// An extra field nested this deep (the whole document's depth), arrays or objects.
    Deep(usize, bool),
}

/// Keys the generator's extra fields never use: Sidekiq's own and the markers'.
const RESERVED: &[&str] = &[
    "class",
    "args",
    "jid",
    "queue",
    "retry",
    "created_at",
    "enqueued_at",
    "backtrace",
    "retry_queue",
    "dead",
    "tags",
    "retry_for",
    "retry_count",
    "error_message",
    "error_class",
    "failed_at",
    "retried_at",
    "error_backtrace",
    "jobs_recoveries",
    "fz",
    "big",
    "deep",
];

fn legal_extra() -> BoxedStrategy<(String, J)> {
    let fixed: Vec<(String, J)> = vec![
        ("bid".into(), J::Str("b-7f3a".into())),
        ("wrapped".into(), J::Str("<b>Mailer</b>".into())),
        (
            "display_class".into(),
            J::Str("\"><script>x</script>".into()),
        ),
        (
            "tags".into(),
            J::Arr(vec![J::Str("<i>vip</i>".into()), J::Str(String::new())]),
        ),
        (
            "error_message".into(),
            J::Str("<script>alert(1)</script>".into()),
        ),
        ("error_class".into(), J::Str("Foo::Bar".into())),
        ("error_backtrace".into(), J::Str("not base64 ~~~".into())),
        // base64 of zlib("hello"): inflates, but to something that is not JSON.
        (
            "error_backtrace".into(),
            J::Str("eJzLSM3JyQcABiwCFQ==".into()),
        ),
        ("failed_at".into(), J::Float(1_767_225_000.5)),
        ("retried_at".into(), J::Int(1_767_225_100)),
        ("retry_count".into(), J::Int(3)),
        ("at".into(), J::Float(1_767_225_600.0)),
        (
            "cattr".into(),
            J::Obj(vec![("user".into(), J::Str("\u{1f600}".into()))]),
        ),
        ("long".into(), J::Str("x".repeat(20_000))),
    ];
    prop_oneof![
        prop::sample::select(fixed),
        (
            text().prop_filter("not a reserved key", |key| !RESERVED
                .contains(&key.as_str())),
            value(false),
        ),
    ]
    .boxed()
}

/// A shape of entry.
#[derive(Clone, Debug)]
enum Shape {
    /// Arbitrary bytes around the marker.
    Bytes(Vec<u8>, Vec<u8>),
    /// A valid job with bytes that are not UTF-8 spliced in.
    NotUtf8(Base, Spot, Vec<u8>),
    /// A valid job's JSON, broken.
    Malformed(Base, Break),
    /// A job with one thing done to it.
    Job(Base, Dev),
    /// JSON that is not an object: an array or a string holding the marker.
    NonObject(J),
    /// A bare scalar or an empty entry: no room for a marker.
    Scalar(String),
    /// An object of Sidekiq's keys, each missing, right, of any type, or twice.
    Fields(Vec<(&'static str, Vec<J>)>),
}

/// Where the bad bytes go.
#[derive(Clone, Copy, Debug)]
enum Spot {
    AfterMarker,
    Front,
    End,
    InClass,
}

/// How the JSON is broken.
#[derive(Clone, Debug)]
enum Break {
    /// Cut short, somewhere after the marker.
    Cut(u16),
    /// Something after the object.
    Trailing(&'static str),
    SingleQuotes,
    NaN,
    TrailingComma,
    UnquotedKey,
    /// A raw control character inside a string.
    Control,
    /// `\ud800` alone in a string.
    LoneSurrogate,
}

fn not_utf8_bytes() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        prop::sample::select(vec![
            vec![0xff],
            vec![0xfe, 0xff],
            vec![0xc0, 0x80],
            vec![0xed, 0xa0, 0x80],
            vec![0x80],
            vec![0xe2, 0x82],
            vec![0xf8, 0x88, 0x80, 0x80, 0x80],
        ]),
        prop::collection::vec(0x80_u8..=0xff, 1..6)
            .prop_filter("not UTF-8", |bytes| std::str::from_utf8(bytes).is_err()),
    ]
    .boxed()
}

fn dev(family: &str) -> BoxedStrategy<Dev> {
    match family {
        "plain" => Just(Dev::Plain).boxed(),
        "retry" => prop_oneof![
            prop::sample::select(vec![
                J::Str("true".into()),
                J::Str("5".into()),
                J::Float(5.0),
                J::Obj(vec![]),
                J::Arr(vec![]),
                J::Null,
                J::Int(-3),
                J::Bool(false),
                J::Big("123456789012345678901234567890".into()),
            ]),
            value(true),
        ]
        .prop_map(Dev::Retry)
        .boxed(),
        "retry_count" => prop_oneof![
            (i64::MIN..0).prop_map(J::Int),
            prop::sample::select(vec![
                J::Float(3.0),
                J::Float(0.5),
                J::Str("3".into()),
                J::Int(4_294_967_296),
                J::Null,
                J::Big("99999999999999999999999".into()),
            ]),
            value(true),
        ]
        .prop_map(Dev::RetryCount)
        .boxed(),
        "options" => prop_oneof![
            (
                Just("tags"),
                prop::sample::select(vec![
                    J::Arr(vec![J::Int(1)]),
                    J::Str("x".into()),
                    J::Arr(vec![J::Null]),
                    J::Arr(vec![J::Arr(vec![J::Str("a".into())])]),
                ])
            ),
            (
                Just("retry_for"),
                prop::sample::select(vec![J::Float(3600.5), J::Int(-1), J::Str("1h".into())])
            ),
            (
                Just("backtrace"),
                prop::sample::select(vec![J::Str("x".into()), J::Int(-1), J::Float(2.5)])
            ),
            (
                Just("dead"),
                prop::sample::select(vec![J::Str("false".into()), J::Int(0), J::Bool(false)])
            ),
            (
                Just("retry_queue"),
                prop::sample::select(vec![J::Int(1), J::Null, J::Arr(vec![])])
            ),
            (
                prop::sample::select(vec![
                    "tags",
                    "retry_for",
                    "backtrace",
                    "dead",
                    "retry_queue"
                ]),
                value(true)
            ),
        ]
        .prop_map(|(key, value)| Dev::Option(key, value))
        .boxed(),
        "missing" => prop::sample::select(vec!["jid", "queue"])
            .prop_map(Dev::Missing)
            .boxed(),
        "duplicate" => (
            prop::sample::select(vec!["class", "args", "jid", "queue", "retry", "created_at"]),
            value(false),
        )
            .prop_map(|(key, first)| Dev::Duplicate(key, first))
            .boxed(),
        "times" => (
            prop::sample::select(vec![
                "created_at",
                "enqueued_at",
                "failed_at",
                "retried_at",
                "at",
            ]),
            prop_oneof![
                prop::sample::select(vec!["2024-01-01T00:00:00Z", "yesterday", "", "1767225600"])
                    .prop_map(str::to_owned),
                text(),
            ],
        )
            .prop_map(|(key, time)| Dev::StringTime(key, time))
            .boxed(),
        "bigint" => prop::collection::vec(big_int(), 1..3)
            .prop_map(Dev::BigInts)
            .boxed(),
        "floats" => prop::collection::vec(float(), 1..4)
            .prop_map(Dev::Floats)
            .boxed(),
        "inf" => prop::sample::select(HUGE).prop_map(Dev::Infinite).boxed(),
        "empty" => prop::sample::select(vec![
            "class",
            "queue",
            "jid",
            "retry_queue",
            "error_message",
            "wrapped",
        ])
        .prop_map(Dev::Empty)
        .boxed(),
        "legal" => prop::collection::vec(legal_extra(), 1..6)
            .prop_map(Dev::Legal)
            .boxed(),
        "deep" => (
            prop_oneof![2_usize..=100, 101_usize..=200, 201_usize..=5_000],
            any::<bool>(),
        )
            .prop_map(|(depth, objects)| Dev::Deep(depth, objects))
            .boxed(),
        other => unreachable!("no deviation family {other}"),
    }
}

/// The generator's families, with their weights; `JOBS_FUZZ_KINDS` picks among the names.
const FAMILIES: &[(&str, u32)] = &[
    ("bytes", 2),
    ("utf8", 2),
    ("malformed", 2),
    ("nonobject", 1),
    ("scalar", 1),
    ("fields", 3),
    ("plain", 1),
    ("retry", 1),
    ("retry_count", 1),
    ("options", 1),
    ("missing", 1),
    ("duplicate", 1),
    ("times", 1),
    ("bigint", 1),
    ("floats", 1),
    ("inf", 1),
    ("empty", 1),
    ("legal", 2),
    ("deep", 1),
];

fn shape(family: &str) -> BoxedStrategy<Shape> {
    match family {
        "bytes" => (
            prop::collection::vec(any::<u8>(), 0..48),
            prop::collection::vec(any::<u8>(), 0..48),
        )
            .prop_map(|(before, after)| Shape::Bytes(before, after))
            .boxed(),
        "utf8" => (
            base(),
            prop::sample::select(vec![
                Spot::AfterMarker,
                Spot::Front,
                Spot::End,
                Spot::InClass,
            ]),
            not_utf8_bytes(),
        )
            .prop_map(|(base, spot, bad)| Shape::NotUtf8(base, spot, bad))
            .boxed(),
        "malformed" => (
            base(),
            prop_oneof![
                any::<u16>().prop_map(Break::Cut),
                prop::sample::select(vec!["x", "}", ",", "{}", "]", "\"", "/"])
                    .prop_map(Break::Trailing),
                Just(Break::SingleQuotes),
                Just(Break::NaN),
                Just(Break::TrailingComma),
                Just(Break::UnquotedKey),
                Just(Break::Control),
                Just(Break::LoneSurrogate),
            ],
        )
            .prop_map(|(base, how)| Shape::Malformed(base, how))
            .boxed(),
        "nonobject" => prop_oneof![
            prop::collection::vec(value(true), 0..4).prop_map(J::Arr),
            text().prop_map(J::Str),
        ]
        .prop_map(Shape::NonObject)
        .boxed(),
        "scalar" => prop_oneof![
            prop::sample::select(vec![
                "",
                " ",
                "\n",
                "null",
                "true",
                "false",
                "0",
                "-1",
                "1e400",
                "\"\"",
                "[]",
                "\"default\"",
                "[[[]]]",
            ])
            .prop_map(str::to_owned),
            any::<i64>().prop_map(|n| n.to_string()),
            float().prop_map(float_text),
        ]
        .prop_map(Shape::Scalar)
        .boxed(),
        "fields" => {
            let keys = [
                "class",
                "args",
                "jid",
                "queue",
                "retry",
                "retry_count",
                "created_at",
                "enqueued_at",
                "failed_at",
                "at",
                "tags",
                "backtrace",
                "dead",
                "retry_for",
                "retry_queue",
                "error_message",
                "error_class",
                "error_backtrace",
            ];
            let fields: Vec<BoxedStrategy<(&'static str, Vec<J>)>> = keys
                .into_iter()
                .map(|key| {
                    (
                        Just(key),
                        prop_oneof![
                            2 => Just(Vec::new()),
                            3 => right_typed(key).prop_map(|value| vec![value]),
                            3 => value(true).prop_map(|value| vec![value]),
                            1 => prop::collection::vec(
                                prop_oneof![right_typed(key), value(true)],
                                2..=2
                            ),
                        ],
                    )
                        .boxed()
                })
                .collect();
            fields.prop_map(Shape::Fields).boxed()
        }
        family => (base(), dev(family))
            .prop_map(|(base, dev)| Shape::Job(base, dev))
            .boxed(),
    }
}

/// A value of the type Sidekiq expects for `key`.
fn right_typed(key: &'static str) -> BoxedStrategy<J> {
    match key {
        "class" => prop::sample::select(vec!["Record", "RecordSlowly", "RubyJob", "Record"])
            .prop_map(|class| J::Str(class.to_owned()))
            .boxed(),
        "args" => prop::collection::vec(value(false), 0..3)
            .prop_map(J::Arr)
            .boxed(),
        "jid" => "[0-9a-f]{24}".prop_map(J::Str).boxed(),
        "queue" | "retry_queue" => prop::sample::select(vec!["default", "ruby"])
            .prop_map(|queue| J::Str(queue.to_owned()))
            .boxed(),
        "retry" | "backtrace" => prop_oneof![
            any::<bool>().prop_map(J::Bool),
            (0_i64..30).prop_map(J::Int)
        ]
        .boxed(),
        "retry_count" | "retry_for" => (0_i64..30).prop_map(J::Int).boxed(),
        "dead" => any::<bool>().prop_map(J::Bool).boxed(),
        "tags" => prop::collection::vec(text().prop_map(J::Str), 0..3)
            .prop_map(J::Arr)
            .boxed(),
        "created_at" | "enqueued_at" | "failed_at" | "at" => (1_700_000_000.0..1_800_000_000.0_f64)
            .prop_map(J::Float)
            .boxed(),
        _ => text().prop_map(J::Str).boxed(),
    }
}

/// Where an entry is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Queue,
    ScheduleDue,
    ScheduleNegInf,
    ScheduleLater,
    SchedulePosInf,
    RetryDue,
    RetryLater,
    Dead,
    /// The working list of a process that died holding it: crash recovery's to hand back.
    DeadProcess,
}

/// The process that died holding `Target::DeadProcess` entries (it has no heartbeat).
const DEAD_PROCESS: &str = "fuzzdead:1:0123456789ab";

impl Target {
    /// Its name in `JOBS_FUZZ_TARGETS`.
    fn name(self) -> &'static str {
        match self {
            Self::Queue => "queue",
            Self::ScheduleDue => "schedule_due",
            Self::ScheduleNegInf => "schedule_neg_inf",
            Self::ScheduleLater => "schedule_later",
            Self::SchedulePosInf => "schedule_pos_inf",
            Self::RetryDue => "retry_due",
            Self::RetryLater => "retry_later",
            Self::Dead => "dead",
            Self::DeadProcess => "dead_process",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::Queue => "queue:default",
            Self::ScheduleDue
            | Self::ScheduleNegInf
            | Self::ScheduleLater
            | Self::SchedulePosInf => "schedule",
            Self::RetryDue | Self::RetryLater => "retry",
            Self::Dead => "dead",
            Self::DeadProcess => "jobs:working:fuzzdead:1:0123456789ab",
        }
    }

    /// Whether the worker should take it: from the queue, or due in `schedule` or `retry`.
    fn taken(self) -> bool {
        matches!(
            self,
            Self::Queue
                | Self::ScheduleDue
                | Self::ScheduleNegInf
                | Self::RetryDue
                | Self::DeadProcess
        )
    }

    fn score(self, now: f64, ago: u32) -> f64 {
        let ago = f64::from(ago);
        match self {
            Self::Queue | Self::DeadProcess => 0.0,
            Self::ScheduleDue | Self::RetryDue | Self::Dead => now - ago,
            Self::ScheduleLater | Self::RetryLater => now + 3_600.0 + ago,
            Self::ScheduleNegInf => f64::NEG_INFINITY,
            Self::SchedulePosInf => f64::INFINITY,
        }
    }
}

/// Where entries go, with weights; `JOBS_FUZZ_TARGETS` picks among them by name.
const TARGETS: &[(Target, u32)] = &[
    (Target::Queue, 4),
    (Target::ScheduleDue, 3),
    (Target::ScheduleNegInf, 1),
    (Target::ScheduleLater, 1),
    (Target::SchedulePosInf, 1),
    (Target::RetryDue, 3),
    (Target::RetryLater, 1),
    (Target::Dead, 2),
    (Target::DeadProcess, 2),
];

fn target(targets: &[Target]) -> BoxedStrategy<Target> {
    let weighted: Vec<W<BoxedStrategy<Target>>> = TARGETS
        .iter()
        .filter(|(target, _)| targets.contains(target))
        .map(|(target, weight)| (*weight, Just(*target).boxed()))
        .collect();
    Union::new_weighted(weighted).boxed()
}

/// One entry to write: where, how long ago it was due (or died), and what.
#[derive(Clone, Debug)]
struct Spec {
    target: Target,
    ago: u32,
    shape: Shape,
}

/// One run: the entries, and the filters typed into each set's search box.
#[derive(Clone)]
struct Case {
    specs: Vec<Spec>,
    filters: Vec<String>,
}

/// What was written where, byte for byte: the shrunk input a failure prints.
impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        for (index, spec) in self.specs.iter().enumerate() {
            let entry = build(index, spec, 0.0);
            list.entry(&format_args!(
                "{:?} ({} s ago; {}): {}",
                spec.target,
                spec.ago,
                entry.kind,
                show_up_to(&entry.raw, 1_000)
            ));
        }
        list.finish()?;
        write!(f, " searched for {:?}", self.filters)
    }
}

fn case(families: &[&'static str], targets: &[Target]) -> BoxedStrategy<Case> {
    let shapes: Vec<W<BoxedStrategy<Shape>>> = FAMILIES
        .iter()
        .filter(|(family, _)| families.contains(family))
        .map(|(family, weight)| (*weight, shape(family)))
        .collect();
    let shape = Union::new_weighted(shapes);
    (
        prop::collection::vec(
            (target(targets), 1_u32..86_400, shape).prop_map(|(target, ago, shape)| Spec {
                target,
                ago,
                shape,
            }),
            1..=16,
        ),
        prop::collection::vec(text(), 0..3),
    )
        .prop_map(|(specs, filters)| Case { specs, filters })
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// What each entry should become.

/// What an entry is, by Sidekiq's rules.
#[derive(Clone, Debug, PartialEq)]
enum Expect {
    /// Not a job at all: the dead set, as stored or wrapped.
    NotAJob,
    /// A job Sidekiq would run: never dead-lettered as invalid.
    Job {
        /// The worker knows its class and its arguments decode: it must run.
        runs: bool,
        /// Its queue as Sidekiq reads it (the last `queue`, `default` when missing).
        queue: String,
        /// `retry: false` or `dead: false` on a job that fails: it may be dropped.
        may_vanish: bool,
    },
    /// Either reading is defensible (`1e400`, nesting between Ruby's and serde's limits, random
    /// fields): any one place but a working list or the queue it came from.
    Any { may_vanish: bool },
}

/// An entry as written.
#[derive(Debug)]
struct Entry {
    /// Its row in the table of bad inputs.
    kind: String,
    target: Target,
    score: f64,
    raw: Vec<u8>,
    /// Where the entry can be told from every other; `None` for bare scalars.
    marker: Option<String>,
    expect: Expect,
    /// Texts that must survive any rewrite (large integers, floats, the jid).
    keep: Vec<String>,
    /// Whether Redis took it (a sorted set keeps one copy of equal members).
    written: bool,
}

fn marker(index: usize) -> String {
    format!("FZ{index:04}Q")
}

/// `NotAJob`, unless the bytes happen to be a JSON object after all.
fn by_parsing(raw: &[u8]) -> Expect {
    match serde_json::from_slice::<Value>(raw) {
        Ok(Value::Object(_)) => Expect::Any { may_vanish: true },
        _ => Expect::NotAJob,
    }
}

fn nested(depth: usize, objects: bool) -> String {
    // The document is one object deep already.
    let levels = depth.saturating_sub(1);
    if objects {
        let levels = levels.max(1);
        format!(
            "{}{{}}{}",
            "{\"a\":".repeat(levels - 1),
            "}".repeat(levels - 1)
        )
    } else {
        format!("{}{}", "[".repeat(levels), "]".repeat(levels))
    }
}

fn build(index: usize, spec: &Spec, now: f64) -> Entry {
    let marker = marker(index);
    let mut entry = Entry {
        kind: String::new(),
        target: spec.target,
        score: spec.target.score(now, spec.ago),
        raw: Vec::new(),
        marker: Some(marker.clone()),
        expect: Expect::NotAJob,
        keep: Vec::new(),
        written: false,
    };
    match &spec.shape {
        Shape::Bytes(before, after) => {
            entry.kind = "arbitrary bytes".into();
            entry.raw = [before.as_slice(), marker.as_bytes(), after.as_slice()].concat();
            entry.expect = by_parsing(&entry.raw);
        }
        Shape::NotUtf8(base, spot, bad) => {
            entry.kind = "bytes that are not UTF-8, in a job".into();
            let json = object(&base.fields(&marker)).into_bytes();
            let at = match spot {
                Spot::Front => 0,
                Spot::End => json.len(),
                Spot::AfterMarker => {
                    find(&json, marker.as_bytes()).expect("the marker") + marker.len()
                }
                Spot::InClass => find(&json, b"\"class\":\"").expect("the class") + 10,
            };
            entry.raw = [&json[..at], bad.as_slice(), &json[at..]].concat();
            entry.expect = Expect::NotAJob;
        }
        Shape::Malformed(base, how) => {
            entry.kind = "malformed JSON".into();
            let json = object(&base.fields(&marker));
            let broken = match how {
                Break::Cut(at) => {
                    let start = json.find(&marker).expect("the marker") + marker.len();
                    let room = json.len() - 1 - start;
                    let cut = start + room * usize::from(*at) / 65_536;
                    let mut cut = cut.min(json.len() - 1);
                    while !json.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    json[..cut].to_owned()
                }
                Break::Trailing(garbage) => format!("{json}{garbage}"),
                Break::SingleQuotes => json.replacen("\"class\"", "'class'", 1),
                Break::NaN => json.replacen("\"retry\":true", "\"retry\":NaN", 1),
                Break::TrailingComma => format!("{},}}", &json[..json.len() - 1]),
                Break::UnquotedKey => json.replacen("\"jid\":", "jid:", 1),
                Break::Control => json.replacen(&marker, &format!("{marker}\u{1}"), 1),
                Break::LoneSurrogate => json.replacen(&marker, &format!("{marker}\\ud800"), 1),
            };
            entry.raw = broken.into_bytes();
            entry.expect = if matches!(how, Break::LoneSurrogate) {
                // Only a reader that decodes the string refuses it: promotion reads the top
                // level raw and moves it, Ruby's parser takes it, and a Rust worker buries it.
                // Any one place.
                Expect::Any { may_vanish: false }
            } else {
                by_parsing(&entry.raw)
            };
        }
        Shape::NonObject(value) => {
            entry.kind = "JSON that is not an object".into();
            let value = match value {
                J::Arr(items) => J::Arr([vec![J::Str(marker.clone())], items.clone()].concat()),
                J::Str(text) => J::Str(format!("{marker}{text}")),
                other => J::Arr(vec![J::Str(marker.clone()), other.clone()]),
            };
            entry.raw = value.render().into_bytes();
            entry.expect = Expect::NotAJob;
        }
        Shape::Scalar(text) => {
            entry.kind = "bare scalars, empty entries".into();
            entry.raw = text.clone().into_bytes();
            entry.marker = None;
            entry.expect = Expect::NotAJob;
        }
        Shape::Fields(fields) => {
            entry.kind = "Sidekiq's keys, random types".into();
            let mut rendered = vec![("fz".to_owned(), quote(&marker))];
            let mut may_vanish = false;
            for (key, values) in fields {
                for value in values {
                    let value = match (key, value) {
                        // The marker first in every `args`, so a job that runs logs it.
                        (&"args", J::Arr(items)) => {
                            J::Arr([vec![J::Str(marker.clone())], items.clone()].concat())
                        }
                        (&("retry" | "dead"), J::Bool(false)) => {
                            may_vanish = true;
                            value.clone()
                        }
                        _ => value.clone(),
                    };
                    rendered.push(((*key).to_owned(), value.render()));
                }
            }
            entry.raw = object(&rendered).into_bytes();
            entry.expect = Expect::Any { may_vanish };
        }
        Shape::Job(base, dev) => job(&mut entry, base, dev, &marker),
    }
    entry
}

fn job(entry: &mut Entry, base: &Base, dev: &Dev, marker: &str) {
    let mut fields = base.fields(marker);
    let runs = base.runs();
    let mut queue = base.queue().to_owned();
    let mut keep_jid = true;
    let mut any = false;
    let mut may_vanish = false;
    // Numbers go in the arguments of a Ruby job, in an extra field of ours (whose arguments
    // must stay a label).
    let place_numbers = |fields: &mut Vec<(String, String)>, numbers: Vec<String>| {
        if runs {
            set_field(fields, "big", format!("[{}]", numbers.join(",")));
        } else {
            let args = format!("[{},1,\"two\",{}]", quote(marker), numbers.join(","));
            set_field(fields, "args", args);
        }
    };
    entry.kind = match dev {
        Dev::Plain => "a valid job (control)".into(),
        Dev::Retry(value) => {
            set_field(&mut fields, "retry", value.render());
            any = value.has_huge();
            may_vanish = matches!(value, J::Bool(false));
            "`retry` of an odd type".into()
        }
        Dev::RetryCount(value) => {
            set_field(&mut fields, "retry_count", value.render());
            any = value.has_huge();
            "`retry_count` negative, float, string, huge".into()
        }
        Dev::Option(key, value) => {
            set_field(&mut fields, key, value.render());
            any = value.has_huge();
            may_vanish = *key == "dead" && matches!(value, J::Bool(false));
            "options of odd types (`tags:[1]`, `backtrace:\"x\"`, …)".into()
        }
        Dev::Missing(key) => {
            fields.retain(|(name, _)| name != key);
            if *key == "queue" {
                queue = "default".into();
            } else {
                keep_jid = false;
            }
            format!("`{key}` missing")
        }
        Dev::Duplicate(key, first) => {
            let at = fields
                .iter()
                .position(|(name, _)| name == key)
                .expect("the key");
            fields.insert(at, ((*key).to_owned(), first.render()));
            "duplicate keys (the last one valid)".into()
        }
        Dev::StringTime(key, time) => {
            set_field(&mut fields, key, quote(time));
            "times as strings".into()
        }
        Dev::BigInts(numbers) => {
            entry.keep.extend(numbers.iter().cloned());
            place_numbers(&mut fields, numbers.clone());
            "integers beyond 64 bits".into()
        }
        Dev::Floats(numbers) => {
            let texts: Vec<String> = numbers.iter().map(|value| float_text(*value)).collect();
            entry.keep.extend(texts.iter().cloned());
            place_numbers(&mut fields, texts);
            "floats: 17 digits, subnormal, extreme".into()
        }
        Dev::Infinite(literal) => {
            place_numbers(&mut fields, vec![(*literal).to_owned()]);
            any = true;
            "`1e400` (out of f64's range)".into()
        }
        Dev::Empty(key) => {
            set_field(&mut fields, key, quote(""));
            match *key {
                "class" | "queue" => any = true,
                "jid" => keep_jid = false,
                _ => {}
            }
            "empty strings".into()
        }
        Dev::Legal(extras) => {
            for (key, value) in extras {
                if !fields.iter().any(|(name, _)| name == key) {
                    fields.push((key.clone(), value.render()));
                }
            }
            "valid job, odd-but-legal extra fields".into()
        }
        Dev::Deep(depth, objects) => {
            set_field(&mut fields, "deep", nested(*depth, *objects));
            match depth {
                0..=100 => "nesting up to 100 (Ruby's limit)".into(),
                101..=200 => {
                    any = true;
                    "nesting 101 to 200 (beyond Ruby's 100, near serde's 128)".into()
                }
                _ => {
                    // Promotion reads only the top level, field by field, so it moves such a
                    // job; whichever worker takes it then buries it (serde stops at 128
                    // levels, Ruby's parser at 100), or it waits in a queue no worker here
                    // takes. Either is one place.
                    any = true;
                    "nesting beyond 200".into()
                }
            }
        }
    };
    if keep_jid {
        entry.keep.push(base.jid.clone());
    }
    entry.raw = object(&fields).into_bytes();
    entry.expect = if any {
        Expect::Any { may_vanish }
    } else {
        Expect::Job {
            runs,
            queue,
            may_vanish: may_vanish && !runs,
        }
    };
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

/// The bytes, escaped and cut short, for a report.
fn show(raw: &[u8]) -> String {
    show_up_to(raw, 240)
}

fn show_up_to(raw: &[u8], limit: usize) -> String {
    let text = raw.escape_ascii().to_string();
    if text.len() > limit {
        format!("{}… ({} bytes)", &text[..limit], raw.len())
    } else {
        text
    }
}

// ---------------------------------------------------------------------------------------------
// One case: write, look at the dashboard, run the worker, check.

/// A broken invariant.
#[derive(Debug)]
struct Violation {
    /// Which: `crash`, `stalled`, `lost`, `duplicated`, `stranded`, `stuck`, `wrong place`,
    /// `misplaced`, `altered`, `page`.
    invariant: &'static str,
    /// The row of the table (the kind of input), or the page.
    row: String,
    text: String,
}

impl Violation {
    fn new(invariant: &'static str, row: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            invariant,
            row: row.into(),
            text: text.into(),
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.invariant, self.text)
    }
}

/// Labels of the good jobs written after the hostile ones.
const CANARIES: [&str; 3] = ["CANARY-queue", "CANARY-schedule", "CANARY-retry"];

async fn run_case(redis: &TestRedis, case: &Case, tally: &Mutex<Tally>) -> Vec<Violation> {
    let mut raw = redis.raw().await;
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut raw)
        .await
        .expect("FLUSHALL");
    let client = redis.client();
    let app = Router::new().nest("/jobs", jobs::web::router(&client));
    let log = CallLog::default();
    let mut violations = Vec::new();
    let mut figures = Figures::default();

    let written_at = now();
    let mut entries: Vec<Entry> = case
        .specs
        .iter()
        .enumerate()
        .map(|(index, spec)| build(index, spec, written_at))
        .collect();
    write(&mut raw, &mut entries).await;

    // Every page with every hostile entry in place.
    let pages = seeds(&mut raw, case, &entries).await;
    crawl(
        &app,
        pages,
        400,
        "before the run",
        &mut violations,
        &mut figures,
    )
    .await;

    // A real worker, until the work is done (or it is plainly stuck), then good jobs.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut task = tokio::spawn(worker(redis, &log).concurrency(5).run_until(async {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_millis(150)).await;
    crawl(
        &app,
        fixed_pages(),
        0,
        "while the worker runs",
        &mut violations,
        &mut figures,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline && !quiet(&mut raw).await {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    canaries(redis, &client, &log, &mut violations).await;
    let _ = stop.send(());
    let crash = match tokio::time::timeout(Duration::from_secs(15), &mut task).await {
        Err(_) => {
            task.abort();
            Some("the worker did not stop within 15 s (hang)".to_owned())
        }
        Ok(Err(error)) => Some(format!("the worker task panicked: {error}")),
        Ok(Ok(Err(error))) => Some(format!("the worker stopped with an error: {error}")),
        Ok(Ok(Ok(()))) => None,
    };
    if let Some(crash) = crash {
        figures.crashes += 1;
        violations.push(Violation::new("crash", "", crash));
    }

    // Where everything is.
    let stored = snapshot(&mut raw).await;
    let ran = log.entries();
    check(
        &entries,
        &stored,
        &ran,
        now(),
        &mut violations,
        &mut figures,
    );

    // Every page again, after the run.
    let pages = seeds(&mut raw, case, &entries).await;
    crawl(
        &app,
        pages,
        400,
        "after the run",
        &mut violations,
        &mut figures,
    )
    .await;

    tally
        .lock()
        .expect("the tally")
        .add(&entries, &figures, &violations);
    violations
}

async fn write(raw: &mut redis::aio::MultiplexedConnection, entries: &mut [Entry]) {
    for entry in entries.iter_mut() {
        let key = entry.target.key();
        entry.written = if entry.target == Target::Queue {
            let _: () = raw.sadd("queues", "default").await.expect("SADD");
            let _: () = raw.lpush(key, &entry.raw).await.expect("LPUSH");
            true
        } else if entry.target == Target::DeadProcess {
            let _: () = raw.sadd("jobs:workers", DEAD_PROCESS).await.expect("SADD");
            let _: () = raw.lpush(key, &entry.raw).await.expect("LPUSH");
            true
        } else {
            let score = if entry.score.is_infinite() {
                if entry.score > 0.0 { "+inf" } else { "-inf" }.to_owned()
            } else {
                format!("{}", entry.score)
            };
            let added: usize = redis::cmd("ZADD")
                .arg(key)
                .arg(score)
                .arg(&entry.raw)
                .query_async(raw)
                .await
                .expect("ZADD");
            added == 1
        };
    }
}

/// Whether the worker has nothing left to do: `queue:default` empty, nothing due in
/// `schedule` or `retry`, every working list empty.
async fn quiet(raw: &mut redis::aio::MultiplexedConnection) -> bool {
    let queued: usize = raw.llen("queue:default").await.unwrap_or(1);
    let now = now();
    let scheduled: usize = raw.zcount("schedule", "-inf", now).await.unwrap_or(1);
    let retries: usize = raw.zcount("retry", "-inf", now).await.unwrap_or(1);
    let lists: Vec<String> = raw.keys("jobs:working:*").await.unwrap_or_default();
    let mut held = 0;
    for list in lists {
        held += raw.llen::<_, usize>(&list).await.unwrap_or(1);
    }
    queued + scheduled + retries + held == 0
}

/// Writes a good job to the queue, one due in `schedule` and one due in `retry`, and waits for
/// all three to run: the worker (fetch and scheduler alike) is still working.
async fn canaries(
    redis: &TestRedis,
    client: &jobs::Client,
    log: &CallLog,
    violations: &mut Vec<Violation>,
) {
    client
        .perform_async(Record {
            label: CANARIES[0].to_owned(),
        })
        .await
        .expect("push the canary");
    for (label, set) in [(CANARIES[1], "schedule"), (CANARIES[2], "retry")] {
        let job = Payload::new("Record", vec![json!(label)])
            .to_json()
            .expect("a job");
        redis.zadd(set, now() - 1.0, &job).await;
    }
    let deadline = Instant::now() + Duration::from_secs(4);
    let missing = |log: &CallLog| -> Vec<&str> {
        let ran = log.entries();
        CANARIES
            .iter()
            .copied()
            .filter(|label| !ran.iter().any(|entry| entry == label))
            .collect()
    };
    while Instant::now() < deadline && !missing(log).is_empty() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let missing = missing(log);
    if !missing.is_empty() {
        violations.push(Violation::new(
            "stalled",
            "",
            format!("good jobs written after the hostile ones did not run within 4 s: {missing:?}"),
        ));
    }
}

/// One value stored in Redis.
#[derive(Debug)]
struct Stored {
    key: String,
    list: bool,
    sorted: bool,
    bytes: Vec<u8>,
    score: f64,
}

/// Every value of every key, as bytes: list and set members, sorted-set members with their
/// scores, hash fields and values, strings.
async fn snapshot(raw: &mut redis::aio::MultiplexedConnection) -> Vec<Stored> {
    let keys: Vec<String> = raw.keys("*").await.expect("KEYS");
    let mut stored = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(raw)
            .await
            .expect("TYPE");
        let mut push = |bytes: Vec<u8>, list: bool, sorted: bool, score: f64| {
            stored.push(Stored {
                key: key.clone(),
                list,
                sorted,
                bytes,
                score,
            });
        };
        match kind.as_str() {
            "list" => {
                let members: Vec<Vec<u8>> = raw.lrange(&key, 0, -1).await.expect("LRANGE");
                for member in members {
                    push(member, true, false, 0.0);
                }
            }
            "zset" => {
                let members: Vec<(Vec<u8>, f64)> =
                    raw.zrange_withscores(&key, 0, -1).await.expect("ZRANGE");
                for (member, score) in members {
                    push(unwrap_base64(member), false, true, score);
                }
            }
            "set" => {
                let members: Vec<Vec<u8>> = raw.smembers(&key).await.expect("SMEMBERS");
                for member in members {
                    push(member, false, false, 0.0);
                }
            }
            "hash" => {
                let pairs: Vec<(Vec<u8>, Vec<u8>)> = raw.hgetall(&key).await.expect("HGETALL");
                for (field, value) in pairs {
                    push(field, false, false, 0.0);
                    push(value, false, false, 0.0);
                }
            }
            "string" => {
                let value: Vec<u8> = raw.get(&key).await.expect("GET");
                push(value, false, false, 0.0);
            }
            _ => {}
        }
    }
    stored
}

/// Where a copy of an entry was found.
#[derive(Debug, Clone, PartialEq)]
enum Place {
    Ran,
    Queue(String),
    Working(String),
    /// In `schedule` or `retry`; `same`: the bytes and score written, in the set written.
    Set {
        key: String,
        due: bool,
        same: bool,
    },
    Dead {
        form: DeadForm,
        same: bool,
    },
    Other(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum DeadForm {
    /// The entry exactly as it was stored.
    AsStored,
    /// Wrapped as `jobs::InvalidPayload`.
    Wrapped,
    /// A job, rewritten (a failure's retry count and error).
    Job,
}

impl Place {
    fn of(stored: &Stored, entry: &Entry, now: f64) -> Self {
        let same = stored.bytes == entry.raw
            && stored.key == entry.target.key()
            && stored.score.total_cmp(&entry.score).is_eq();
        match stored.key.as_str() {
            "schedule" | "retry" if stored.sorted => Self::Set {
                key: stored.key.clone(),
                due: stored.score <= now,
                same,
            },
            "dead" if stored.sorted => Self::Dead {
                form: if stored.bytes == entry.raw {
                    DeadForm::AsStored
                } else if is_wrapped(&stored.bytes) {
                    DeadForm::Wrapped
                } else {
                    DeadForm::Job
                },
                same,
            },
            key if stored.list && key.starts_with("jobs:working:") => Self::Working(key.into()),
            key if stored.list && key.starts_with("queue:") => Self::Queue(key[6..].into()),
            key => Self::Other(key.into()),
        }
    }

    /// The outcome's name in the table.
    fn outcome(&self) -> String {
        match self {
            Self::Ran => "ran".into(),
            Self::Queue(queue) if queue == "default" => "left in queue:default".into(),
            Self::Queue(_) => "promoted to its queue".into(),
            Self::Working(_) => "STRANDED in a working list".into(),
            Self::Set { due: true, key, .. } => format!("STUCK due in {key}"),
            Self::Set {
                same: true, key, ..
            } => format!("left alone in {key} (not due)"),
            Self::Set { key, .. } => format!("in {key}, to retry later"),
            Self::Dead { same: true, .. } => "left alone in dead".into(),
            Self::Dead {
                form: DeadForm::AsStored,
                ..
            } => "dead, as stored".into(),
            Self::Dead {
                form: DeadForm::Wrapped,
                ..
            } => "dead, wrapped as jobs::InvalidPayload".into(),
            Self::Dead {
                form: DeadForm::Job,
                ..
            } => "dead, as a failed job".into(),
            Self::Other(key) => format!("in {key}"),
        }
    }
}

/// An entry that is not UTF-8 is buried wrapped with its bytes in base64 (`"jobs_encoding":
/// "base64"`, docs/wire-format.md); for the search, the wrapping gets the entry as text again
/// (invalid bytes replaced), where its marker can be found.
fn unwrap_base64(member: Vec<u8>) -> Vec<u8> {
    use base64::Engine as _;
    let Ok(mut job) = serde_json::from_slice::<Value>(&member) else {
        return member;
    };
    if job["class"] != "jobs::InvalidPayload" || job["jobs_encoding"] != "base64" {
        return member;
    }
    let decoded = job["args"][0]
        .as_str()
        .and_then(|text| base64::engine::general_purpose::STANDARD.decode(text).ok());
    match decoded {
        Some(bytes) => {
            job["args"][0] = Value::from(String::from_utf8_lossy(&bytes).into_owned());
            serde_json::to_vec(&job).unwrap_or(member)
        }
        None => member,
    }
}

fn is_wrapped(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Value>(bytes).is_ok_and(|job| job["class"] == "jobs::InvalidPayload")
}

/// Whether `place` is right for `entry`; if not, the invariant broken and what was expected.
fn judge(entry: &Entry, place: &Place) -> Result<(), (&'static str, String)> {
    if let Place::Working(key) = place {
        return Err(("stranded", format!("left in the working list {key}")));
    }
    if let Place::Other(key) = place {
        return Err(("misplaced", format!("found in {key}")));
    }
    if !entry.target.taken() {
        return match place {
            Place::Set { same: true, .. } | Place::Dead { same: true, .. } => Ok(()),
            _ => Err((
                "wrong place",
                format!(
                    "it was not due (or dead) and must be left alone in {}; got: {}",
                    entry.target.key(),
                    place.outcome()
                ),
            )),
        };
    }
    match place {
        Place::Set { due: true, key, .. } => {
            return Err(("stuck", format!("due, and still in {key} after the run")));
        }
        Place::Set { key, .. } if key == "schedule" => {
            return Err(("wrong place", "moved into schedule".into()));
        }
        Place::Queue(queue) if queue == "default" => {
            return Err((
                "stuck",
                "left in queue:default, which the worker takes from".into(),
            ));
        }
        _ => {}
    }
    let fine = match &entry.expect {
        Expect::NotAJob => matches!(
            place,
            Place::Dead {
                form: DeadForm::AsStored | DeadForm::Wrapped,
                ..
            }
        ),
        Expect::Any { .. } => true,
        Expect::Job { runs, queue, .. } => {
            // From `queue:default` it runs there; promoted or recovered, it goes to its queue.
            let processed_here = entry.target == Target::Queue || queue == "default";
            if !processed_here {
                *place == Place::Queue(queue.clone())
            } else if *runs {
                *place == Place::Ran
            } else {
                matches!(
                    place,
                    Place::Set { .. }
                        | Place::Dead {
                            form: DeadForm::Job,
                            ..
                        }
                )
            }
        }
    };
    if fine {
        Ok(())
    } else {
        Err((
            "wrong place",
            format!("expected {}, got: {}", describe(entry), place.outcome()),
        ))
    }
}

fn describe(entry: &Entry) -> String {
    match &entry.expect {
        Expect::NotAJob => "the dead set (not a job)".into(),
        Expect::Any { .. } => "any one place".into(),
        Expect::Job { runs, queue, .. } => {
            if entry.target != Target::Queue && queue != "default" {
                format!("promoted to queue:{queue} (a valid job)")
            } else if *runs {
                "to run (a valid job of a class the worker has)".into()
            } else {
                "retry, or dead as a failed job (a valid job of a class only Ruby has)".into()
            }
        }
    }
}

/// Checks invariants 2 and 3 for every entry, and records what each got.
fn check(
    entries: &[Entry],
    stored: &[Stored],
    ran: &[String],
    now: f64,
    violations: &mut Vec<Violation>,
    figures: &mut Figures,
) {
    for list in stored
        .iter()
        .filter(|stored| stored.list && stored.key.starts_with("jobs:working:"))
    {
        figures.stranded += 1;
        violations.push(Violation::new(
            "stranded",
            "",
            format!("{} holds {}", list.key, show(&list.bytes)),
        ));
    }
    for (index, entry) in entries.iter().enumerate() {
        if !entry.written {
            figures.outcomes.push(String::new());
            continue;
        }
        let header = || {
            format!(
                "entry {index} ({}; written to {}): {}",
                entry.kind,
                entry.target.key(),
                show(&entry.raw)
            )
        };
        let Some(marker) = &entry.marker else {
            figures
                .outcomes
                .push(scalar(entry, entries, stored, now, violations, &header));
            continue;
        };
        let mut places: Vec<(Place, &[u8])> = ran
            .iter()
            .filter(|label| label.contains(marker.as_str()))
            .map(|label| (Place::Ran, label.as_bytes()))
            .collect();
        places.extend(
            stored
                .iter()
                .filter(|value| contains(&value.bytes, marker.as_bytes()))
                .map(|value| (Place::of(value, entry, now), value.bytes.as_slice())),
        );
        match places.as_slice() {
            [] => {
                let vanish = matches!(
                    entry.expect,
                    Expect::Any { may_vanish: true }
                        | Expect::Job {
                            may_vanish: true,
                            ..
                        }
                );
                if vanish {
                    figures
                        .outcomes
                        .push("dropped (retry or dead: false)".into());
                } else {
                    figures.outcomes.push("LOST".into());
                    violations.push(Violation::new(
                        "lost",
                        &entry.kind,
                        format!("in no place at all\n  {}", header()),
                    ));
                }
            }
            [(place, bytes)] => {
                figures.outcomes.push(place.outcome());
                if let Err((invariant, problem)) = judge(entry, place) {
                    violations.push(Violation::new(
                        invariant,
                        &entry.kind,
                        format!("{problem}\n  {}", header()),
                    ));
                }
                if let Err(problem) = intact(entry, place, bytes) {
                    violations.push(Violation::new(
                        "altered",
                        &entry.kind,
                        format!("{problem}\n  {}", header()),
                    ));
                }
            }
            many => {
                figures.outcomes.push(format!("IN {} PLACES", many.len()));
                let list: Vec<String> = many.iter().map(|(place, _)| place.outcome()).collect();
                violations.push(Violation::new(
                    "duplicated",
                    &entry.kind,
                    format!(
                        "in {} places: {}\n  {}",
                        many.len(),
                        list.join("; "),
                        header()
                    ),
                ));
            }
        }
    }
}

/// What a rewrite must not change: large integers, floats and the jid of a job that was
/// promoted, retried or buried as itself; the exact text of an entry wrapped as invalid.
fn intact(entry: &Entry, place: &Place, bytes: &[u8]) -> Result<(), String> {
    match place {
        Place::Queue(_)
        | Place::Set { same: false, .. }
        | Place::Dead {
            form: DeadForm::Job,
            ..
        } if matches!(entry.expect, Expect::Job { .. }) => {
            let lost: Vec<&String> = entry
                .keep
                .iter()
                .filter(|text| !contains(bytes, text.as_bytes()))
                .collect();
            if lost.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "the rewrite lost {lost:?}; it holds {}",
                    show(bytes)
                ))
            }
        }
        Place::Dead {
            form: DeadForm::Wrapped,
            ..
        } => {
            let Ok(text) = std::str::from_utf8(&entry.raw) else {
                // Bytes that are not UTF-8 cannot be kept as they were in JSON; the marker
                // was found, which is what can be asked.
                return Ok(());
            };
            let job: Value = serde_json::from_slice(bytes).unwrap_or_default();
            // Promotion sets `enqueued_at` before a worker finds the job is none: what was
            // buried is then the promoted text.
            let promoted = matches!(entry.target.key(), "schedule" | "retry");
            if job["args"][0] == text || promoted {
                Ok(())
            } else {
                Err(format!(
                    "wrapped as invalid, but its argument is not the entry as stored: {}",
                    show(bytes)
                ))
            }
        }
        _ => Ok(()),
    }
}

/// Checks a bare scalar, which has no marker: the copies of its exact bytes (and wrappings of
/// them) must be as many as were written, none of them in a working list, a queue or due.
fn scalar(
    entry: &Entry,
    entries: &[Entry],
    stored: &[Stored],
    now: f64,
    violations: &mut Vec<Violation>,
    header: &dyn Fn() -> String,
) -> String {
    let written = entries
        .iter()
        .filter(|other| other.marker.is_none() && other.written && other.raw == entry.raw)
        .count();
    let text = String::from_utf8_lossy(&entry.raw);
    let copies: Vec<Place> = stored
        .iter()
        .filter(|value| {
            value.bytes == entry.raw
                || (value.key == "dead"
                    && serde_json::from_slice::<Value>(&value.bytes).is_ok_and(|job| {
                        job["class"] == "jobs::InvalidPayload" && job["args"][0] == *text
                    }))
        })
        .map(|value| Place::of(value, entry, now))
        .collect();
    let first_of_its_kind = entries
        .iter()
        .find(|other| other.marker.is_none() && other.written && other.raw == entry.raw)
        .is_some_and(|first| std::ptr::eq(first, entry));
    if first_of_its_kind {
        if copies.len() != written {
            violations.push(Violation::new(
                if copies.len() < written {
                    "lost"
                } else {
                    "duplicated"
                },
                &entry.kind,
                format!(
                    "{written} written, {} found: {:?}\n  {}",
                    copies.len(),
                    copies.iter().map(Place::outcome).collect::<Vec<_>>(),
                    header()
                ),
            ));
        }
        for place in &copies {
            let bad = match place {
                Place::Working(_) => Some("stranded"),
                Place::Queue(_) => Some("stuck"),
                Place::Set { due: true, .. } => Some("stuck"),
                Place::Other(_) => Some("misplaced"),
                _ => None,
            };
            if let Some(bad) = bad {
                violations.push(Violation::new(
                    bad,
                    &entry.kind,
                    format!("{}\n  {}", place.outcome(), header()),
                ));
            }
        }
    }
    // The row counts what the copy that matches this entry's target got, as near as can be.
    copies
        .iter()
        .find(|place| {
            matches!(
                place,
                Place::Set { same: true, .. } | Place::Dead { same: true, .. }
            )
        })
        .or_else(|| copies.first())
        .map_or_else(|| "LOST".into(), Place::outcome)
}

// ---------------------------------------------------------------------------------------------
// The dashboard.

fn fixed_pages() -> Vec<String> {
    [
        "/jobs",
        "/jobs/stats",
        "/jobs/busy",
        "/jobs/queues",
        "/jobs/queues/default",
        "/jobs/retries",
        "/jobs/scheduled",
        "/jobs/morgue",
        "/jobs/morgue?order=asc",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// Every byte of `text` but letters and digits percent-encoded, as the dashboard's links are.
fn segment(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// The pages to start from: the tabs, searches of each set, the detail page of every member of
/// each set and the page of every queue named in `queues`.
async fn seeds(
    raw: &mut redis::aio::MultiplexedConnection,
    case: &Case,
    entries: &[Entry],
) -> Vec<String> {
    let mut pages = fixed_pages();
    let mut filters: Vec<String> = case.filters.clone();
    filters.extend(["FZ", "*", "\\", "[", "\""].map(str::to_owned));
    if let Some(marker) = entries.iter().find_map(|entry| entry.marker.clone()) {
        filters.push(marker);
    }
    for slug in ["retries", "scheduled", "morgue"] {
        for filter in &filters {
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair("substr", filter)
                .finish();
            pages.push(format!("/jobs/{slug}?{query}"));
        }
    }
    for (slug, key) in [
        ("retries", "retry"),
        ("scheduled", "schedule"),
        ("morgue", "dead"),
    ] {
        let members: Vec<(Vec<u8>, f64)> = raw.zrange_withscores(key, 0, -1).await.expect("ZRANGE");
        for (member, score) in members {
            let entry = SortedEntry {
                score,
                record: JobRecord::parse(String::from_utf8_lossy(&member).into_owned()),
            };
            pages.push(format!("/jobs/{slug}/{}", segment(&entry.key())));
        }
    }
    let queues: Vec<Vec<u8>> = raw.smembers("queues").await.expect("SMEMBERS");
    for queue in queues {
        pages.push(format!(
            "/jobs/queues/{}",
            segment(&String::from_utf8_lossy(&queue))
        ));
    }
    pages
}

/// GETs `seeds` and every dashboard link their pages show, up to `limit` more pages; every one
/// must answer below 500, within 10 s.
async fn crawl(
    app: &Router,
    seeds: Vec<String>,
    limit: usize,
    when: &str,
    violations: &mut Vec<Violation>,
    figures: &mut Figures,
) {
    let mut seen: HashSet<String> = seeds.iter().cloned().collect();
    let mut queue: VecDeque<String> = seeds.into();
    let mut followed = 0;
    while let Some(path) = queue.pop_front() {
        figures.pages += 1;
        let request = match Request::get(&path).body(Body::empty()) {
            Ok(request) => request,
            Err(error) => {
                figures.page_errors += 1;
                violations.push(Violation::new(
                    "page",
                    family(&path),
                    format!("a link that is no URI ({error}): {path}"),
                ));
                continue;
            }
        };
        let response =
            match tokio::time::timeout(Duration::from_secs(10), app.clone().oneshot(request)).await
            {
                Ok(Ok(response)) => response,
                Ok(Err(error)) => match error {},
                Err(_) => {
                    figures.page_errors += 1;
                    violations.push(Violation::new(
                        "page",
                        format!("{} hangs", family(&path)),
                        format!("GET {path} {when} took over 10 s"),
                    ));
                    continue;
                }
            };
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 64 << 20)
            .await
            .unwrap_or_default();
        let body = String::from_utf8_lossy(&body);
        if status.is_server_error() {
            figures.page_errors += 1;
            let excerpt: String = body.chars().take(300).collect();
            violations.push(Violation::new(
                "page",
                format!("{} {} ({})", family(&path), status.as_u16(), reason(&body)),
                format!("GET {path} {when} answered {status}: {excerpt}"),
            ));
            continue;
        }
        for link in links(&body) {
            if followed < limit
                && link.starts_with("/jobs")
                && !link.starts_with("/jobs/assets/")
                && seen.insert(link.clone())
            {
                followed += 1;
                queue.push_back(link);
            }
        }
    }
}

/// A page's route, for the table: `/jobs/morgue/…` for any entry's page, `/jobs/retries?…` for
/// any search.
fn family(path: &str) -> String {
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    let parts: Vec<&str> = route.split('/').collect();
    let mut family = if parts.len() > 3 {
        format!("{}/…", parts[..3].join("/"))
    } else {
        route.to_owned()
    };
    if !query.is_empty() {
        family.push_str("?…");
    }
    family
}

/// Why an error page says it failed, without what varies (ports, offsets).
fn reason(body: &str) -> String {
    let text = body
        .split_once("<p>")
        .map_or(body, |(_, rest)| rest.split('<').next().unwrap_or(rest));
    let text = text
        .split_once("refused a command: ")
        .map_or(text, |(_, rest)| rest);
    text.split(':')
        .next()
        .unwrap_or(text)
        .chars()
        .take(80)
        .collect()
}

/// The `href`s of a page, unescaped.
fn links(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|link| {
            link.replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&#39;", "'")
                .replace("&amp;", "&")
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Figures.

/// What one case measured.
#[derive(Default)]
struct Figures {
    /// What each entry got, by index (empty: not written).
    outcomes: Vec<String>,
    pages: usize,
    page_errors: usize,
    crashes: usize,
    stranded: usize,
}

/// What every case measured.
#[derive(Default)]
struct Tally {
    cases: usize,
    entries: usize,
    pages: usize,
    page_errors: usize,
    crashes: usize,
    stalls: usize,
    stranded: usize,
    /// Per row of the table: how many tried, and how many got what.
    rows: BTreeMap<String, (usize, BTreeMap<String, usize>)>,
    /// Per kind of broken invariant: how often, and the first example.
    broken: BTreeMap<String, (usize, String)>,
}

impl Tally {
    fn add(&mut self, entries: &[Entry], figures: &Figures, violations: &[Violation]) {
        self.cases += 1;
        self.pages += figures.pages;
        self.page_errors += figures.page_errors;
        self.crashes += figures.crashes;
        self.stranded += figures.stranded;
        for (entry, outcome) in entries.iter().zip(&figures.outcomes) {
            if outcome.is_empty() {
                continue;
            }
            self.entries += 1;
            let row = self.rows.entry(entry.kind.clone()).or_default();
            row.0 += 1;
            *row.1.entry(outcome.clone()).or_default() += 1;
        }
        for violation in violations {
            if violation.invariant == "stalled" {
                self.stalls += 1;
            }
            let name = format!("{}: {}", violation.invariant, violation.row);
            let slot = self
                .broken
                .entry(name)
                .or_insert_with(|| (0, violation.text.clone()));
            slot.0 += 1;
        }
    }

    fn broken(&self) -> usize {
        self.broken.values().map(|(count, _)| count).sum()
    }

    fn report(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "cases {}, entries tried {}, pages requested {}, pages >= 500 {}, worker crashes or \
             hangs {}, stalls {}, stranded {}",
            self.cases,
            self.entries,
            self.pages,
            self.page_errors,
            self.crashes,
            self.stalls,
            self.stranded
        );
        let _ = writeln!(out, "\n| bad input | tried | what it got |\n|---|---:|---|");
        for (kind, (tried, outcomes)) in &self.rows {
            let mut got: Vec<(&String, &usize)> = outcomes.iter().collect();
            got.sort_by(|a, b| b.1.cmp(a.1));
            let got: Vec<String> = got
                .iter()
                .map(|(outcome, count)| format!("{outcome} {count}"))
                .collect();
            let _ = writeln!(out, "| {kind} | {tried} | {} |", got.join(", "));
        }
        if !self.broken.is_empty() {
            let _ = writeln!(out, "\nbroken invariants (count, first example):");
            for (name, (count, example)) in &self.broken {
                let _ = writeln!(
                    out,
                    "- {name}: {count}\n    {}",
                    example.replace('\n', "\n    ")
                );
            }
        }
        out
    }
}
