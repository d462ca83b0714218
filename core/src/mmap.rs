//! Read-only memory maps with a plain-read fallback (filled in by the engine work).
