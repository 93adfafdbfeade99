//! llm-router: a small, fast gateway between LLM clients and LLM providers.
pub mod protocol;
