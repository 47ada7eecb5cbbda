#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings), allow(dead_code, unused_variables))))]

pub use jobs_runtime::*;

#[cfg(feature = "macros")]
#[doc = include_str!("../docs/job-macro.md")]
pub use jobs_macros::job;

#[doc(hidden)]
pub use jobs_runtime::__private;
