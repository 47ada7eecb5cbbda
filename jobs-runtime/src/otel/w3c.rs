//! W3C Trace Context (`traceparent`, `tracestate`), the propagation used when the program set
//! no global propagator (OpenTelemetry's global default propagates nothing). Written here so
//! that the runtime needs the OpenTelemetry API only, not its SDK.

use std::str::FromStr;
use std::sync::OnceLock;

use opentelemetry::Context;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// The W3C Trace Context propagator.
#[derive(Debug)]
pub(super) struct TraceContext;

impl TextMapPropagator for TraceContext {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let context = span.span_context();
        if !context.is_valid() {
            return;
        }
        let flags = context.trace_flags() & TraceFlags::SAMPLED;
        injector.set(
            TRACEPARENT,
            format!(
                "00-{:032x}-{:016x}-{:02x}",
                context.trace_id(),
                context.span_id(),
                flags
            ),
        );
        let state = context.trace_state().header();
        if !state.is_empty() {
            injector.set(TRACESTATE, state);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match parse(extractor) {
            Some(context) => cx.with_remote_span_context(context),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        static FIELDS: OnceLock<[String; 2]> = OnceLock::new();
        FieldIter::new(FIELDS.get_or_init(|| [TRACEPARENT.to_owned(), TRACESTATE.to_owned()]))
    }
}

/// The remote span a `traceparent` names, with its `tracestate`; `None` when the header is
/// missing or not one a W3C parser accepts.
fn parse(extractor: &dyn Extractor) -> Option<SpanContext> {
    let header = extractor.get(TRACEPARENT)?.trim();
    let parts: Vec<&str> = header.split('-').collect();
    let [version, trace_id, span_id, flags, rest @ ..] = parts.as_slice() else {
        return None;
    };
    let hex = |text: &str, len: usize| {
        text.len() == len
            && text
                .bytes()
                .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
    };
    // Version 00 has exactly four parts; a later version may add some, but never `ff`.
    if !hex(version, 2) || *version == "ff" || (*version == "00" && !rest.is_empty()) {
        return None;
    }
    if !hex(trace_id, 32) || !hex(span_id, 16) || !hex(flags, 2) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace_id).ok()?;
    let span_id = SpanId::from_hex(span_id).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let state = extractor
        .get(TRACESTATE)
        .and_then(|state| TraceState::from_str(state).ok())
        .unwrap_or_default();
    let context = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags) & TraceFlags::SAMPLED,
        true,
        state,
    );
    context.is_valid().then_some(context)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::TraceContextExt;

    use super::TraceContext;

    fn carrier(traceparent: &str, tracestate: Option<&str>) -> HashMap<String, String> {
        let mut carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
        if let Some(state) = tracestate {
            carrier.insert("tracestate".to_owned(), state.to_owned());
        }
        carrier
    }

    #[test]
    fn reads_what_it_writes_and_the_spec_example() {
        let header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let cx = TraceContext.extract(&carrier(header, Some("congo=t61rcWkgMzE")));
        let span = cx.span();
        let context = span.span_context();
        assert!(context.is_valid() && context.is_remote() && context.is_sampled());
        assert_eq!(
            format!("{:032x}", context.trace_id()),
            "0af7651916cd43dd8448eb211c80319c"
        );
        let mut written = HashMap::new();
        TraceContext.inject_context(&cx, &mut written);
        assert_eq!(written["traceparent"], header);
        assert_eq!(written["tracestate"], "congo=t61rcWkgMzE");
    }

    #[test]
    fn refuses_malformed_headers() {
        for header in [
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "garbage",
        ] {
            let cx = TraceContext.extract(&carrier(header, None));
            assert!(!cx.span().span_context().is_valid(), "{header}");
        }
        let mut written = HashMap::new();
        TraceContext.inject_context(&opentelemetry::Context::new(), &mut written);
        assert!(written.is_empty());
    }
}
