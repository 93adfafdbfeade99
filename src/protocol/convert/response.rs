//! TODO(issue 3): filled in by the conversion work.
