//! The `Job` trait that `#[job]` implements, and how arguments travel as JSON.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::context::JobContext;
use crate::job_error::{JobError, RetryOverride};
use crate::options::JobOptions;
use crate::payload::Payload;
use crate::state::{JobState, StateType};
use crate::worker::Exhausted;

/// The future a job's run returns.
pub type JobFuture = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send + 'static>>;

/// A job type: its wire name, options, arguments and body.
///
/// `#[job]` implements it for the struct it generates; implement it by hand only for jobs whose
/// shape the macro cannot express. A value of the type is one call: its fields are the
/// arguments, in order.
pub trait Job: Sized + Send + 'static {
    /// The wire name: Sidekiq's `class`.
    const NAME: &'static str;
    /// The options declared with `#[job(...)]`.
    const OPTIONS: JobOptions;
    /// The shared state types the job asks for with `#[state]`; the worker checks at start that
    /// it has each.
    const STATE: &'static [StateType] = &[];
    /// Whether [`perform`](Self::perform) reads its [`JobContext`]. `#[job]` sets it to
    /// `false` for a function without a `#[context]` parameter; the worker then passes a
    /// context with no facts in it (an empty jid, class and queue) instead of building one
    /// from the payload for each job. Leave it `true` in a hand-written implementation that
    /// reads it.
    const READS_CONTEXT: bool = true;

    /// The arguments as Sidekiq's positional JSON array.
    fn encode_args(&self) -> Result<Vec<Value>, serde_json::Error>;

    /// Rebuilds a call from its positional JSON arguments.
    fn decode_args(args: Vec<Value>) -> Result<Self, ArgsError>;

    /// Runs the job with its context and the worker's shared state.
    fn perform(self, context: JobContext, state: &JobState) -> JobFuture;

    /// What a unique job's uniqueness is over instead of all its arguments (`#[job(unique_key
    /// = …)]`): `None`, the default, for all of them.
    fn unique_key(&self) -> Option<Result<Value, serde_json::Error>> {
        None
    }

    /// Sidekiq's `sidekiq_retry_in` (`#[job(retry_in = my_fn)]`): what a failure does instead
    /// of the usual backoff, given the new retry count (0 on the first failure) and the error.
    /// `None`, the default, keeps Sidekiq's schedule; [`RetryOverride::In`] a delay (plus
    /// Sidekiq's jitter), [`RetryOverride::Kill`] the dead set now (retries-exhausted hooks
    /// run), [`RetryOverride::Discard`] drops the job. An override the error carries
    /// ([`JobError::retry_in`], [`kill`](JobError::kill), [`discard`](JobError::discard))
    /// wins over this.
    fn retry_in(count: u32, error: &JobError) -> Option<RetryOverride> {
        let _ = (count, error);
        None
    }

    /// Sidekiq's `sidekiq_retries_exhausted` (`#[job(retries_exhausted = my_fn)]`): called
    /// once with the job (its failure fields set) and the error when its retries run out or
    /// it is killed, before it goes to the dead set; [`Exhausted::Discard`] drops it instead
    /// (Sidekiq 7.2+'s `:discard`). The worker's own retries-exhausted handlers and death
    /// handlers run after it. The default keeps the job ([`Exhausted::Bury`]).
    fn retries_exhausted(job: &Payload, error: &JobError) -> Exhausted {
        let _ = (job, error);
        Exhausted::Bury
    }
}

/// A type that can be a job argument: it survives a trip through JSON and crosses threads.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a job argument",
    label = "job arguments are stored in Redis as JSON, so this type must implement `Serialize` and `Deserialize`",
    note = "derive `serde::Serialize` and `serde::Deserialize` for it, or pass an id and load the value inside the job"
)]
pub trait JobArgument: Serialize + DeserializeOwned + Send + 'static {}

// `do_not_recommend`: a type that is neither `Serialize` nor `Deserialize` gets one error, the
// `JobArgument` message above, rather than one per missing trait.
#[diagnostic::do_not_recommend]
impl<T> JobArgument for T where T: Serialize + DeserializeOwned + Send + 'static {}

/// A job's JSON arguments did not match its Rust arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgsError {
    message: String,
}

impl ArgsError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ArgsError {}

/// Reads positional arguments one by one, naming the one that does not fit.
#[derive(Debug)]
pub struct ArgsDecoder {
    args: std::vec::IntoIter<Value>,
    position: usize,
}

impl ArgsDecoder {
    /// Starts reading `args`, which must hold exactly `expected` values.
    pub fn new(args: Vec<Value>, expected: usize) -> Result<Self, ArgsError> {
        if args.len() != expected {
            let plural = if expected == 1 { "" } else { "s" };
            return Err(ArgsError::new(format!(
                "the job takes {expected} argument{plural}, but its payload has {}",
                args.len()
            )));
        }
        Ok(Self {
            args: args.into_iter(),
            position: 0,
        })
    }

    /// Decodes the next argument, called `name` in the job function.
    pub fn next<T>(&mut self, codec: ArgCodec<T>, name: &str) -> Result<T, ArgsError> {
        self.position += 1;
        let value = self.args.next().ok_or_else(|| {
            ArgsError::new(format!("argument `{name}` (#{}) is missing", self.position))
        })?;
        (codec.decode)(value).map_err(|error| {
            ArgsError::new(format!(
                "argument `{name}` (#{}) is not a `{}`: {error}",
                self.position,
                std::any::type_name::<T>()
            ))
        })
    }
}

/// How one argument type goes to and from JSON.
///
/// [`codec`] is the only place the [`JobArgument`] bound is checked, so an argument type that
/// is not serializable gets exactly one compile error, on the argument.
#[derive(Debug)]
pub struct ArgCodec<T> {
    /// Encodes a value.
    pub encode: fn(&T) -> Result<Value, serde_json::Error>,
    /// Decodes a value.
    pub decode: fn(Value) -> Result<T, serde_json::Error>,
}

impl<T> Clone for ArgCodec<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for ArgCodec<T> {}

fn encode_value<T: Serialize>(value: &T) -> Result<Value, serde_json::Error> {
    serde_json::to_value(value)
}

/// The JSON codec of argument type `T`.
pub const fn codec<T: JobArgument>() -> ArgCodec<T> {
    ArgCodec {
        encode: encode_value::<T>,
        decode: serde_json::from_value::<T>,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{ArgsDecoder, codec};

    #[test]
    fn names_the_argument_that_does_not_decode() {
        let mut args = ArgsDecoder::new(vec![json!(1), json!("x")], 2).unwrap();
        assert_eq!(args.next(codec::<u32>(), "user_id").unwrap(), 1);
        let error = args.next(codec::<u32>(), "count").unwrap_err().to_string();
        assert!(
            error.starts_with("argument `count` (#2) is not a `u32`"),
            "{error}"
        );
    }

    #[test]
    fn checks_the_number_of_arguments() {
        let error = ArgsDecoder::new(vec![json!(1), json!(2)], 1).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the job takes 1 argument, but its payload has 2"
        );
    }
}
