//! The `#[job]` attribute's compile-fail and pass cases, run with `trybuild`.
//!
//! Every file in `tests/fail/` breaks one rule and must fail to compile with exactly the
//! diagnostic in its `.stderr` file; every file in `tests/pass/` must compile and run.
//!
//! Compiler messages change between Rust releases, so the `.stderr` files are only compared on
//! the compiler they were written with, [`PINNED_RUSTC`]. On any other compiler this test says
//! so loudly and passes without comparing anything. Regenerate the files with
//! `TRYBUILD=overwrite cargo test -p ui-tests` after bumping the pin.

use std::process::Command;

/// The `rustc --version` prefix the `.stderr` files were generated with.
const PINNED_RUSTC: &str = "rustc 1.95.";

/// The version line of the compiler cargo builds the cases with.
fn rustc_version() -> Result<String, String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let output = Command::new(&rustc)
        .arg("--version")
        .output()
        .map_err(|error| format!("could not run `{rustc} --version`: {error}"))?;
    if !output.status.success() {
        return Err(format!("`{rustc} --version` failed: {}", output.status));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[test]
fn ui() {
    match rustc_version() {
        Ok(version) if version.starts_with(PINNED_RUSTC) => {}
        found => {
            let found = found.unwrap_or_else(|error| error);
            eprintln!(
                "\n\
                 ==================================================================\n\
                 WARNING: the #[job] UI cases were NOT compared.\n\
                 Their .stderr files are pinned to `{PINNED_RUSTC}*`, but this is\n\
                 `{found}`. Compiler messages differ between releases, so run\n\
                 `cargo test -p ui-tests` on the pinned compiler, or bump\n\
                 PINNED_RUSTC in ui-tests/tests/ui.rs and regenerate with\n\
                 `TRYBUILD=overwrite cargo test -p ui-tests`.\n\
                 ==================================================================\n"
            );
            return;
        }
    }
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/fail/*.rs");
    cases.pass("tests/pass/*.rs");
}
