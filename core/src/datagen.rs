//! The NYC-taxi CSV generator (filled in by the foundation work).
