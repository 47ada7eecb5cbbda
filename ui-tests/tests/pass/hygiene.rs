//! The expansion compiles without a warning under strict rustc lints, next to local items that
//! shadow every prelude name and crate it could have used. (trybuild runs rustc, not clippy:
//! clippy sees the expansion in `tests/lints.rs`.)

#![deny(warnings, unsafe_code, missing_docs)]
#![forbid(unsafe_code)]

/// Jobs defined where the prelude's names mean something else.
pub mod shadowed {
    #![allow(dead_code, non_camel_case_types, non_upper_case_globals)]

    /// Not `core::result::Result`.
    pub struct Result;
    /// Not `core::option::Option`.
    pub struct Option;
    /// Not `Result::Ok`.
    pub struct Ok;
    /// Not `Result::Err`.
    pub struct Err;
    /// Not `Option::Some`.
    pub struct Some;
    /// Not `Option::None`.
    pub const None: () = ();
    /// Not `alloc::boxed::Box`.
    pub struct Box;
    /// Not `alloc::string::String`.
    pub struct String;
    /// Not `alloc::vec::Vec`.
    pub struct Vec;
    /// Not `From`.
    pub trait From {}
    /// Not `Into`.
    pub trait Into {}
    /// Not `Send`.
    pub trait Send {}
    /// Not `Sized`.
    pub trait Sized {}
    /// Not `Default`.
    pub trait Default {}
    /// Not `Clone`.
    pub trait Clone {}
    /// Not `Iterator`.
    pub trait Iterator {}
    /// Not `IntoIterator`.
    pub trait IntoIterator {}
    /// Not `Future`.
    pub trait Future {}
    /// Not the `serde` crate.
    pub mod serde {}
    /// Not the `core` crate.
    pub mod core {}
    /// Not the `std` crate.
    pub mod std {}
    /// Not the `alloc` crate.
    pub mod alloc {}
    /// Not the `inventory` crate.
    pub mod inventory {}
    /// Not the `chrono` crate.
    pub mod chrono {}

    /// Recomputes the scores of one day.
    #[jobs::job(queue = "scores", retry = 3, tags = ["nightly"], timeout = 30)]
    pub async fn score_generation(
        date: ::chrono::NaiveDate,
        delay: ::core::time::Duration,
        time: u64,
        jobs: ::std::vec::Vec<u32>,
    ) -> ::core::result::Result<(), ::jobs::JobError> {
        let _ = (date, delay, time, jobs);
        ::core::result::Result::Ok(())
    }

    /// Takes nothing, returns nothing.
    #[jobs::job]
    pub async fn cleanup() {}
}

fn main() {
    use shadowed::{Cleanup, ScoreGeneration, cleanup, score_generation};

    let date = ::chrono::NaiveDate::MIN;
    let delay = ::core::time::Duration::from_secs(1);
    let _ = score_generation(date, delay, 0, ::std::vec::Vec::new());
    let _ = ScoreGeneration::perform_async(date, delay, 0, ::std::vec::Vec::new());
    let _ = ScoreGeneration::perform_in(delay, date, delay, 0, ::std::vec::Vec::new());
    let _ = ScoreGeneration::perform_at(::chrono::Utc::now(), date, delay, 1, vec![2]);
    let _ = ScoreGeneration::perform_inline(date, delay, 0, ::std::vec::Vec::new());
    let _ = ScoreGeneration::perform_bulk([]);
    let _ = ScoreGeneration::set().perform_async((date, delay, 0, vec![1]));
    let _ = cleanup();
    let _ = Cleanup::perform_async();
    assert_eq!(<ScoreGeneration as ::jobs::Job>::NAME, "ScoreGeneration");
}
