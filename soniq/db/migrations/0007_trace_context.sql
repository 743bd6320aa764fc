-- The W3C trace context (traceparent, tracestate) of the span that enqueued the job, when
-- OpenTelemetry was in use there; the worker's span for the job continues that trace.
ALTER TABLE {schema}.jobs ADD COLUMN trace_context json;
