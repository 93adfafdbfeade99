//! Fixture tests for the request converters.
