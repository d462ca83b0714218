//! The CSV group-by engine (filled in by the engine work).
